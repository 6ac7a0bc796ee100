//! The list endpoint's queries: which GSI and `submitted_key` range a [`ListQuery`] reads, and
//! reading it newest first until the page is full.

use pipai_service::model::JobRecord;
use pipai_service::ports::{ListQuery, StoreError};

use super::items::{submitted_key, user_status, user_template, MAX_KEY_MS};
use super::DynamoStore;
use crate::error::{bad_item, store_err};
use crate::item::{get_s, s, Item};

/// Which index and sort-key range a list query reads.
struct ListPlan {
    index: &'static str,
    pk_attr: &'static str,
    pk_value: String,
    /// Inclusive lower bound of `submitted_key`.
    lo: Option<String>,
    /// Exclusive upper bound (queried with BETWEEN when `lo` is set, the equal key dropped).
    hi: Option<String>,
}

/// `None` when the query's range is empty (no need to ask).
fn plan_list(q: &ListQuery) -> Option<ListPlan> {
    let (index, pk_attr, pk_value) = match (&q.status, &q.template_id) {
        (Some(st), _) => ("by_user_status", "user_status", user_status(q.user_id.as_str(), *st)),
        (None, Some(t)) => ("by_user_template", "user_template", user_template(q.user_id.as_str(), t)),
        (None, None) => ("by_user", "user_id", q.user_id.to_string()),
    };
    // `submitted_key(t, "")` sorts before every job submitted at `t`.
    let lo = q.from_ms.filter(|&f| f > 0).map(|f| submitted_key(f.min(MAX_KEY_MS + 1), ""));
    let mut hi: Option<String> = None;
    if let Some(t) = q.to_ms {
        if t <= 0 {
            return None;
        }
        if t <= MAX_KEY_MS {
            hi = Some(submitted_key(t, ""));
        }
    }
    if let Some(a) = &q.after {
        if a.submitted_at_ms < 0 {
            return None;
        }
        let k = submitted_key(a.submitted_at_ms.min(MAX_KEY_MS), a.id.as_str());
        hi = Some(match hi {
            Some(h) if h <= k => h,
            _ => k,
        });
    }
    if let (Some(l), Some(h)) = (&lo, &hi) {
        if l >= h {
            return None;
        }
    }
    Some(ListPlan { index, pk_attr, pk_value, lo, hi })
}

impl DynamoStore {
    /// [`JobStore::list_jobs`](pipai_service::ports::JobStore::list_jobs).
    pub(super) async fn list(&self, q: &ListQuery) -> Result<Vec<JobRecord>, StoreError> {
        let mut out = Vec::new();
        if q.limit == 0 {
            return Ok(out);
        }
        let Some(plan) = plan_list(q) else { return Ok(out) };
        let filtered = q.status.is_some() && q.template_id.is_some();
        let mut start: Option<Item> = None;
        loop {
            let want = q.limit - out.len();
            // Without a filter every item read matches: read what is missing (+1 for a possible
            // item equal to the exclusive upper bound). With one, read ahead.
            let page_limit = if filtered { want.saturating_mul(4).clamp(20, 1000) } else { (want + 1).min(1000) };
            let (items, last) = self.query_page(q, &plan, start, page_limit as i32).await?;
            for item in &items {
                let key = get_s(item, "submitted_key").map_err(|e| bad_item("job", &self.jobs_table, e))?;
                if plan.hi.as_deref() == Some(key) {
                    continue;
                }
                out.push(self.parse_job(item)?);
                if out.len() == q.limit {
                    return Ok(out);
                }
            }
            match last {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }

    async fn query_page(
        &self,
        q: &ListQuery,
        plan: &ListPlan,
        start: Option<Item>,
        page_limit: i32,
    ) -> Result<(Vec<Item>, Option<Item>), StoreError> {
        let mut req = self
            .client
            .query()
            .table_name(&self.jobs_table)
            .index_name(plan.index)
            .scan_index_forward(false)
            .limit(page_limit)
            .set_exclusive_start_key(start)
            .expression_attribute_names("#pk", plan.pk_attr)
            .expression_attribute_values(":pk", s(&plan.pk_value));
        let mut key_condition = "#pk = :pk".to_string();
        if plan.lo.is_some() || plan.hi.is_some() {
            req = req.expression_attribute_names("#sk", "submitted_key");
        }
        match (&plan.lo, &plan.hi) {
            (Some(lo), Some(hi)) => {
                key_condition.push_str(" AND #sk BETWEEN :lo AND :hi");
                req = req.expression_attribute_values(":lo", s(lo)).expression_attribute_values(":hi", s(hi));
            }
            (Some(lo), None) => {
                key_condition.push_str(" AND #sk >= :lo");
                req = req.expression_attribute_values(":lo", s(lo));
            }
            (None, Some(hi)) => {
                key_condition.push_str(" AND #sk < :hi");
                req = req.expression_attribute_values(":hi", s(hi));
            }
            (None, None) => {}
        }
        req = req.key_condition_expression(key_condition);
        if let (Some(_), Some(t)) = (&q.status, &q.template_id) {
            req = req.filter_expression("template_id = :t").expression_attribute_values(":t", s(t));
        }
        let out = req
            .send()
            .await
            .map_err(|e| store_err("dynamodb", &format!("Query {}", plan.index), &self.jobs_table, e))?;
        Ok((out.items.unwrap_or_default(), out.last_evaluated_key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipai_service::model::JobStatus;
    use pipai_service::ports::PageKey;

    fn query() -> ListQuery {
        ListQuery {
            user_id: "u1".parse().unwrap(),
            status: None,
            template_id: None,
            from_ms: None,
            to_ms: None,
            after: None,
            limit: 10,
        }
    }

    #[test]
    fn list_plans() {
        let p = plan_list(&query()).unwrap();
        assert_eq!((p.index, p.pk_attr, p.pk_value.as_str(), p.lo, p.hi), ("by_user", "user_id", "u1", None, None));

        let q = ListQuery { status: Some(JobStatus::Done), template_id: Some("t".into()), ..query() };
        let p = plan_list(&q).unwrap();
        assert_eq!((p.index, p.pk_value.as_str()), ("by_user_status", "u1#done"));
        let q = ListQuery { template_id: Some("t".into()), ..query() };
        assert_eq!(plan_list(&q).unwrap().pk_value, "u1#t");

        let q = ListQuery {
            from_ms: Some(1000),
            to_ms: Some(5000),
            after: Some(PageKey { submitted_at_ms: 4000, id: "bt_0000aa".parse().unwrap() }),
            ..query()
        };
        let p = plan_list(&q).unwrap();
        assert_eq!(p.lo.as_deref(), Some("0000000001000#"));
        assert_eq!(p.hi.as_deref(), Some("0000000004000#bt_0000aa"));
        let q = ListQuery {
            to_ms: Some(3000),
            after: Some(PageKey { submitted_at_ms: 4000, id: "bt_0000aa".parse().unwrap() }),
            ..query()
        };
        assert_eq!(plan_list(&q).unwrap().hi.as_deref(), Some("0000000003000#"));
        // Empty ranges need no query.
        assert!(plan_list(&ListQuery { from_ms: Some(5000), to_ms: Some(5000), ..query() }).is_none());
        assert!(plan_list(&ListQuery { to_ms: Some(0), ..query() }).is_none());
    }
}
