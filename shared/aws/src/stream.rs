//! The jobs table's stream records (as Lambda delivers them) to [`JobChange`]s.

use aws_lambda_events::event::dynamodb::EventRecord;
use pipai_service::events::{ChangeKind, JobChange};
use pipai_service::model::JobStatus;

use crate::dynamo::JobImage;

/// What the stream bookkeeping needs from one record: from its new image (the old one for a
/// `REMOVE`), the job id also from its keys. `Err` says why the record is not a job change (a
/// poison record).
pub fn job_change(record: &EventRecord) -> Result<JobChange, String> {
    let at = |e: &dyn std::fmt::Display| format!("stream record {}: {e}", record.event_id);
    let kind = match record.event_name.as_str() {
        "INSERT" => ChangeKind::Insert,
        "MODIFY" => ChangeKind::Modify,
        "REMOVE" => ChangeKind::Remove,
        other => return Err(at(&format_args!("unknown eventName {other:?}"))),
    };
    let change = &record.change;
    let image = if kind == ChangeKind::Remove { &change.old_image } else { &change.new_image };
    let decode = |item: &serde_dynamo::Item, what: &str| -> Result<JobImage, String> {
        serde_dynamo::from_item(item.clone()).map_err(|e| at(&format_args!("{what} is not a job's: {e}")))
    };
    let image = decode(image, "the image")?;
    let job_id = match image.job_id {
        Some(id) => id,
        None => decode(&change.keys, "the key")?.job_id.ok_or_else(|| at(&"no job_id"))?,
    };
    let at_job = |e: &dyn std::fmt::Display| format!("stream record {} (job {job_id}): {e}", record.event_id);
    let user_id = match image.user_id {
        None if kind != ChangeKind::Remove => return Err(at_job(&"no user_id in the new image")),
        user_id => user_id,
    };
    let status = match (kind, image.status) {
        (ChangeKind::Remove, _) | (_, None) => None,
        (_, Some(st)) => Some(st.parse::<JobStatus>().map_err(|e| at_job(&e))?),
    };
    // The old image's status tells a transition into a terminal state from later writes.
    let old_status = match kind {
        ChangeKind::Modify => serde_dynamo::from_item::<_, JobImage>(change.old_image.clone())
            .ok()
            .and_then(|old| old.status)
            .and_then(|s| s.parse::<JobStatus>().ok()),
        _ => None,
    };
    Ok(JobChange {
        kind,
        job_id,
        user_id,
        status,
        slot_released: image.slot_released.unwrap_or(false),
        old_status,
        notify: image.notify_url.is_some(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::event::dynamodb::Event;

    fn event(json: &str) -> Event {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn decodes_lambda_shaped_records() {
        let e = event(
            r#"{"Records":[
              {"eventID":"1","eventName":"MODIFY","eventVersion":"1.1","eventSource":"aws:dynamodb","awsRegion":"us-east-1",
               "eventSourceARN":"arn:aws:dynamodb:us-east-1:123456789012:table/T/stream/2026",
               "dynamodb":{"ApproximateCreationDateTime":1700000000,"Keys":{"job_id":{"S":"bt_00aa11bb"}},
                 "NewImage":{"job_id":{"S":"bt_00aa11bb"},"user_id":{"S":"u1"},"status":{"S":"done"},"slot_released":{"BOOL":false},"progress":{"N":"1"}},
                 "OldImage":{"job_id":{"S":"bt_00aa11bb"},"user_id":{"S":"u1"},"status":{"S":"running"}},
                 "SequenceNumber":"100","SizeBytes":50,"StreamViewType":"NEW_AND_OLD_IMAGES"}},
              {"eventID":"2","eventName":"REMOVE","awsRegion":"us-east-1",
               "dynamodb":{"Keys":{"job_id":{"S":"bt_00aa11bb"}},
                 "OldImage":{"job_id":{"S":"bt_00aa11bb"},"user_id":{"S":"u1"},"status":{"S":"done"},"slot_released":{"BOOL":true}},
                 "SequenceNumber":"101","SizeBytes":50,"StreamViewType":"NEW_AND_OLD_IMAGES"}},
              {"eventID":"3","eventName":"INSERT","awsRegion":"us-east-1",
               "dynamodb":{"Keys":{"job_id":{"S":"bt_00aa11bb"}},
                 "NewImage":{"job_id":{"S":"bt_00aa11bb"},"status":{"S":"queued"}},"SizeBytes":5}},
              {"eventID":"4","eventName":"INSERT","awsRegion":"us-east-1",
               "dynamodb":{"Keys":{"job_id":{"S":"bt_00aa11bb"}},
                 "NewImage":{"job_id":{"S":"bt_00aa11bb"},"user_id":{"S":"u1"},"status":{"S":"finished"}},"SizeBytes":5}}
            ]}"#,
        );
        let c = job_change(&e.records[0]).unwrap();
        assert_eq!(
            c,
            JobChange {
                kind: ChangeKind::Modify,
                job_id: "bt_00aa11bb".parse().unwrap(),
                user_id: Some("u1".parse().unwrap()),
                status: Some(JobStatus::Done),
                slot_released: false,
                old_status: Some(JobStatus::Running),
                notify: false,
            }
        );
        let c = job_change(&e.records[1]).unwrap();
        assert_eq!(
            (c.kind, c.status, c.user_id.as_ref().map(|u| u.as_str()), c.slot_released),
            (ChangeKind::Remove, None, Some("u1"), true)
        );
        assert!(job_change(&e.records[2]).unwrap_err().contains("no user_id"));
        assert!(job_change(&e.records[3]).unwrap_err().contains("unknown status"));
    }
}
