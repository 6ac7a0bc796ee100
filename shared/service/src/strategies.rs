//! `/v1/strategies`: stored strategies (create, get, list, update by JSON merge patch, delete),
//! and the part of create-job that builds a job's config from one (`strategy_id`).

use chrono::{DateTime, Utc};
use pipai_engine::input::{clipped, parse_json_object_strict};
use pipai_engine::{quoted, JobConfig, StrategyConfig};
use serde_json::{Map, Value};

use crate::api::{parse_limit, query_params, reject_query, Api};
use crate::auth::Principal;
use crate::cursor::{CursorKind, CursorSeal};
use crate::error::ApiError;
use crate::http::{ApiRequest, ApiResponse};
use crate::ids::StrategyId;
use crate::model::{ListPage, StrategyRecord};
use crate::ports::*;

pub const MAX_NAME_CHARS: usize = 100;
pub const MAX_DESCRIPTION_CHARS: usize = 1000;
/// How often a PATCH re-reads and re-applies itself when another update won the race.
const UPDATE_ATTEMPTS: usize = 5;
const FIELDS: [&str; 3] = ["name", "description", "config"];

/// The validated `name`, `description` and `config` of a strategy.
struct StrategyFields {
    name: String,
    description: Option<String>,
    config: StrategyConfig,
}

impl StrategyFields {
    fn from_object(obj: &Map<String, Value>, now: DateTime<Utc>) -> Result<StrategyFields, ApiError> {
        let bad = |field: &str, message: String| ApiError::InvalidParameter(format!("{field}: {message}"));
        if let Some(unknown) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(bad(&clipped(unknown), format!("unknown field; allowed fields are {}", FIELDS.join(", "))));
        }
        let text = |field: &str, max: usize| -> Result<Option<String>, ApiError> {
            match obj.get(field) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => {
                    let chars = s.chars().count();
                    if chars > max {
                        return Err(bad(field, format!("may have at most {max} characters, got {chars}")));
                    }
                    if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
                        return Err(bad(field, "must not contain control characters".into()));
                    }
                    Ok(Some(s.clone()))
                }
                Some(_) => Err(bad(field, "must be a string".into())),
            }
        };
        let name = text("name", MAX_NAME_CHARS)?.ok_or_else(|| bad("name", "is required".into()))?;
        if name.trim().is_empty() || name.contains(['\n', '\t']) {
            return Err(bad("name", format!("must be 1 to {MAX_NAME_CHARS} characters on one line, not blank")));
        }
        let description = text("description", MAX_DESCRIPTION_CHARS)?;
        let config = match obj.get("config") {
            None | Some(Value::Null) => return Err(bad("config", "is required".into())),
            Some(v) => StrategyConfig::from_value(v, now)?,
        };
        Ok(StrategyFields { name, description, config })
    }
}

/// RFC 7396: objects merge recursively, `null` removes a member, anything else replaces.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let target = target.as_object_mut().expect("made an object above");
    for (k, v) in patch {
        if v.is_null() {
            target.remove(k);
        } else {
            merge_patch(target.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// The `{id}` of `/v1/strategies/{id}`.
fn strategy_id(req: &ApiRequest) -> Result<StrategyId, ApiError> {
    req.path
        .trim_end_matches('/')
        .split('/')
        .nth(3)
        .unwrap_or_default()
        .parse()
        .map_err(|e: crate::ids::IdError| ApiError::InvalidParameter(format!("id: {e}")))
}

pub(crate) fn now_of(now_ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(now_ms).expect("a valid clock")
}

fn body_object(req: &ApiRequest) -> Result<Map<String, Value>, ApiError> {
    Ok(parse_json_object_strict(&req.body)?)
}

impl<S, R, M> Api<S, R, M>
where
    S: ApiStore,
    R: ResultStore,
    M: MarketData,
{
    /// A create-job body's resolved config and, when it names a `strategy_id`, the version of
    /// the strategy it was built over. An unknown, deleted or another user's strategy is one
    /// and the same 409.
    pub(crate) async fn job_config_of(
        &self,
        body: Map<String, Value>,
        who: &Principal,
        now_ms: i64,
    ) -> Result<(JobConfig, Option<u32>), ApiError> {
        let Some(given) = body.get("strategy_id").filter(|v| !v.is_null()) else {
            return Ok((JobConfig::from_value(&Value::Object(body), now_of(now_ms))?, None));
        };
        let text = given.as_str().ok_or_else(|| ApiError::InvalidParameter("strategy_id: must be a string".into()))?;
        let strategy = self.usable_strategy(text, who, "strategy_id").await?;
        let config = strategy.config.job_config(strategy.id.as_str(), &body, now_of(now_ms))?;
        Ok((config, Some(strategy.version)))
    }

    /// The caller's strategy named by `text` (the value of `field`), for building configs over
    /// it; an unknown, deleted or another user's strategy is one and the same 409.
    pub(crate) async fn usable_strategy(
        &self,
        text: &str,
        who: &Principal,
        field: &str,
    ) -> Result<StrategyRecord, ApiError> {
        let unusable = || {
            ApiError::InvalidState(format!(
                "{field}: {} is not a strategy you can use (no such strategy, or it was deleted)",
                quoted(text)
            ))
        };
        let id: StrategyId = text.parse().map_err(|_| unusable())?;
        match self.store.get_strategy(&id).await? {
            Some(s) if s.user_id == who.user_id => Ok(s),
            _ => Err(unusable()),
        }
    }

    async fn owned_strategy(&self, id: &StrategyId, who: &Principal) -> Result<StrategyRecord, ApiError> {
        match self.store.get_strategy(id).await? {
            Some(s) if s.user_id == who.user_id => Ok(s),
            _ => Err(ApiError::NotFound(format!("no strategy {id}"))),
        }
    }

    pub(crate) async fn create_strategy(
        &self,
        req: &ApiRequest,
        who: &Principal,
        now_ms: i64,
    ) -> Result<ApiResponse, ApiError> {
        reject_query(req, &[])?;
        let fields = StrategyFields::from_object(&body_object(req)?, now_of(now_ms))?;
        let mut strategy = StrategyRecord {
            id: StrategyId::random(),
            user_id: who.user_id.clone(),
            name: fields.name,
            description: fields.description,
            version: 1,
            config: fields.config,
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
        };
        for _ in 0..5 {
            match self.store.create_strategy(&strategy).await? {
                StrategyCreateOutcome::Created => {
                    return Ok(ApiResponse::json(201, &strategy.view())
                        .with_header("location", format!("/v1/strategies/{}", strategy.id)));
                }
                StrategyCreateOutcome::IdTaken => strategy.id = StrategyId::random(),
            }
        }
        Err(ApiError::Internal("five strategy id collisions in a row".into()))
    }

    pub(crate) async fn get_strategy(&self, req: &ApiRequest, who: &Principal) -> Result<ApiResponse, ApiError> {
        reject_query(req, &[])?;
        let strategy = self.owned_strategy(&strategy_id(req)?, who).await?;
        Ok(ApiResponse::json(200, &strategy.view()))
    }

    pub(crate) async fn list_strategies(&self, req: &ApiRequest, who: &Principal) -> Result<ApiResponse, ApiError> {
        let params = query_params(req, &["limit", "cursor"])?;
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let limit = get("limit").map(|v| parse_limit(v, 100)).transpose()?.unwrap_or(20);
        let seal =
            CursorSeal { master: &self.master, kind: CursorKind::StrategyList, binding: who.user_id.to_string() };
        let fetch = |after, limit| async move {
            self.store.list_strategies(&StrategyListQuery { user_id: who.user_id.clone(), after, limit }).await
        };
        let key_of = |s: &StrategyRecord| StrategyPageKey { updated_at_ms: s.updated_at_ms, id: s.id.clone() };
        let (found, next_cursor) = seal.list_page(get("cursor"), limit, fetch, key_of).await?;
        Ok(ApiResponse::json(200, &ListPage { data: found.iter().map(StrategyRecord::view).collect(), next_cursor }))
    }

    /// A JSON merge patch (RFC 7396) of `name`, `description` and `config`, validated whole
    /// after merging, written only over the version it was applied to: when another update
    /// wins meanwhile, the patch is applied again to the newer strategy, so no update is lost.
    pub(crate) async fn update_strategy(
        &self,
        req: &ApiRequest,
        who: &Principal,
        now_ms: i64,
    ) -> Result<ApiResponse, ApiError> {
        reject_query(req, &[])?;
        let id = strategy_id(req)?;
        let patch = body_object(req)?;
        if let Some(unknown) = patch.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(ApiError::InvalidParameter(format!(
                "{}: unknown or read-only field; a patch may change {}",
                clipped(unknown),
                FIELDS.join(", ")
            )));
        }
        for _ in 0..UPDATE_ATTEMPTS {
            let current = self.owned_strategy(&id, who).await?;
            let mut doc = serde_json::json!({
                "name": current.name,
                "description": current.description,
                "config": current.config.to_map(),
            });
            merge_patch(&mut doc, &Value::Object(patch.clone()));
            let fields = StrategyFields::from_object(doc.as_object().expect("an object"), now_of(now_ms))?;
            let updated = StrategyRecord {
                name: fields.name,
                description: fields.description,
                config: fields.config,
                version: current.version + 1,
                // Never backwards, so the listing order and the cursor stay consistent.
                updated_at_ms: now_ms.max(current.updated_at_ms),
                ..current
            };
            match self.store.update_strategy(&updated).await? {
                StrategyUpdateOutcome::Updated => return Ok(ApiResponse::json(200, &updated.view())),
                StrategyUpdateOutcome::VersionConflict => continue,
                StrategyUpdateOutcome::NotFound => return Err(ApiError::NotFound(format!("no strategy {id}"))),
            }
        }
        Err(ApiError::InvalidState(format!(
            "strategy {id} is being updated by other requests at the same time; retry the update"
        )))
    }

    pub(crate) async fn delete_strategy(&self, req: &ApiRequest, who: &Principal) -> Result<ApiResponse, ApiError> {
        reject_query(req, &[])?;
        let id = strategy_id(req)?;
        match self.store.delete_strategy(&id, &who.user_id).await? {
            StrategyDeleteOutcome::Deleted => Ok(ApiResponse { status: 204, headers: vec![], body: vec![] }),
            StrategyDeleteOutcome::NotFound => Err(ApiError::NotFound(format!("no strategy {id}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7396() {
        // The RFC's appendix A examples.
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "b"}), json!({"b": "c"}), json!({"a": "b", "b": "c"})),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (json!({"a": {"b": "c"}}), json!({"a": {"b": "d", "c": null}}), json!({"a": {"b": "d"}})),
            (json!({"a": [{"b": "c"}]}), json!({"a": [1]}), json!({"a": [1]})),
            (json!({"a": "foo"}), json!({"a": {"bb": {"ccc": null}}}), json!({"a": {"bb": {}}})),
            (json!({"e": null}), json!({"a": 1}), json!({"e": null, "a": 1})),
            (json!([1, 2]), json!({"a": "b", "c": null}), json!({"a": "b"})),
        ];
        for (mut target, patch, want) in cases {
            merge_patch(&mut target, &patch);
            assert_eq!(target, want, "{patch}");
        }
    }
}
