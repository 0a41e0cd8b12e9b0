//! The canary analysis' one question to Prometheus: an instant query through its HTTP
//! API (`POST /api/v1/query`), read as one number. What the answer means for a canary
//! ([`measure`]): within the bounds is a pass, outside is a fail, and no data (an empty
//! result, NaN), too few requests, or no answer at all is inconclusive: never a pass.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use crate::validate::ResolvedCheck;

/// What one evaluation concluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail,
    Inconclusive,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "Pass",
            Self::Fail => "Fail",
            Self::Inconclusive => "Inconclusive",
        }
    }
}

/// One evaluation: the verdict, the value it was drawn from, and why, in words.
#[derive(Clone, Debug, PartialEq)]
pub struct Measurement {
    pub verdict: Verdict,
    pub value: Option<f64>,
    pub message: String,
}

/// Runs the check's queries against the Prometheus at `address` (`http://host:port`).
pub async fn measure(address: &str, check: &ResolvedCheck, timeout: Duration) -> Measurement {
    let inconclusive = |value, message| Measurement {
        verdict: Verdict::Inconclusive,
        value,
        message,
    };
    if let Some((query, min)) = &check.requests {
        match query_one(address, query, timeout).await {
            Ok(Some(n)) if n >= *min => {}
            Ok(Some(n)) => {
                return inconclusive(
                    None,
                    format!(
                        "only {n} requests (requests query), fewer than the {min} the check needs"
                    ),
                );
            }
            Ok(None) => {
                return inconclusive(None, "no data for the requests query".into());
            }
            Err(e) => return inconclusive(None, e),
        }
    }
    match query_one(address, &check.query, timeout).await {
        Ok(Some(value)) => judge(value, check.min, check.max),
        Ok(None) => inconclusive(None, format!("no data for query {}", check.query)),
        Err(e) => inconclusive(None, e),
    }
}

/// Whether `value` lies within the bounds. Pure.
pub fn judge(value: f64, min: Option<f64>, max: Option<f64>) -> Measurement {
    let (verdict, message) = match (min, max) {
        (Some(lo), _) if value < lo => {
            (Verdict::Fail, format!("{value} is below the minimum {lo}"))
        }
        (_, Some(hi)) if value > hi => {
            (Verdict::Fail, format!("{value} is above the maximum {hi}"))
        }
        _ => (Verdict::Pass, format!("{value} is within bounds")),
    };
    Measurement {
        verdict,
        value: Some(value),
        message,
    }
}

/// One instant query: `Ok(None)` when Prometheus has no data (an empty result or NaN);
/// an error (in words) when it cannot be asked or refuses the query, or the query gives
/// more than one series.
pub async fn query_one(
    address: &str,
    query: &str,
    timeout: Duration,
) -> Result<Option<f64>, String> {
    let url = format!("{}/api/v1/query", address.trim_end_matches('/'));
    let body: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("query", query)
        .finish();
    let request = http::Request::post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| format!("prometheus request to {url}: {e}"))?;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let response = tokio::time::timeout(timeout, async {
        let response = client
            .request(request)
            .await
            .map_err(|e| format!("prometheus at {address} did not answer: {e}"))?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("prometheus at {address}: {e}"))?
            .to_bytes();
        Ok::<_, String>((status, bytes))
    })
    .await
    .map_err(|_| {
        format!(
            "prometheus at {address} did not answer within {}s",
            timeout.as_secs()
        )
    })??;
    let (status, bytes) = response;
    let json: Value = serde_json::from_slice(&bytes)
        .map_err(|_| format!("prometheus at {address} answered {status} with no JSON"))?;
    parse_answer(&json)
}

/// The one number in a query's answer. Pure.
pub fn parse_answer(json: &Value) -> Result<Option<f64>, String> {
    if json["status"] != "success" {
        return Err(format!(
            "prometheus refused the query: {}: {}",
            json["errorType"].as_str().unwrap_or("error"),
            json["error"].as_str().unwrap_or("no message")
        ));
    }
    let data = &json["data"];
    let sample = match data["resultType"].as_str() {
        Some("scalar") => &data["result"],
        Some("vector") => {
            let result = data["result"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            match result {
                [] => return Ok(None),
                [one] => &one["value"],
                many => {
                    return Err(format!(
                        "the query gives {} series; it must give one (aggregate it, e.g. with sum)",
                        many.len()
                    ));
                }
            }
        }
        other => {
            return Err(format!(
                "the query gives a {}; it must give one number (a scalar or one series)",
                other.unwrap_or("nothing")
            ));
        }
    };
    let value = sample[1]
        .as_str()
        .and_then(|v| v.parse::<f64>().ok())
        .ok_or_else(|| format!("prometheus answered with no number: {sample}"))?;
    Ok(value.is_finite().then_some(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // The shapes Prometheus answers with: one series, a scalar, none, NaN, many, an error.
    #[test]
    fn answers_are_read_as_one_number_or_no_data() {
        let vector = |result: Value| json!({"status": "success", "data": {"resultType": "vector", "result": result}});
        assert_eq!(
            parse_answer(&vector(json!([{"metric": {}, "value": [1.0, "0.25"]}]))),
            Ok(Some(0.25))
        );
        assert_eq!(
            parse_answer(
                &json!({"status": "success", "data": {"resultType": "scalar", "result": [1.0, "3"]}})
            ),
            Ok(Some(3.0))
        );
        assert_eq!(parse_answer(&vector(json!([]))), Ok(None));
        assert_eq!(
            parse_answer(&vector(json!([{"metric": {}, "value": [1.0, "NaN"]}]))),
            Ok(None)
        );
        let two = vector(json!([{"value": [1.0, "1"]}, {"value": [1.0, "2"]}]));
        assert!(parse_answer(&two).unwrap_err().contains("2 series"));
        let bad = json!({"status": "error", "errorType": "bad_data", "error": "parse error"});
        assert!(
            parse_answer(&bad)
                .unwrap_err()
                .contains("bad_data: parse error")
        );
    }

    // Bounds: below min or above max fails; the edges pass.
    #[test]
    fn bounds_decide_pass_or_fail() {
        assert_eq!(judge(0.01, None, Some(0.01)).verdict, Verdict::Pass);
        assert_eq!(judge(0.02, None, Some(0.01)).verdict, Verdict::Fail);
        assert_eq!(judge(0.98, Some(0.99), None).verdict, Verdict::Fail);
        assert!(
            judge(5.0, Some(1.0), Some(4.0))
                .message
                .contains("above the maximum 4")
        );
    }

    // Nothing listening is inconclusive, not a pass and not a fail.
    #[tokio::test]
    async fn no_prometheus_is_inconclusive() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let check = ResolvedCheck {
            query: "up".into(),
            min: Some(1.0),
            max: None,
            interval: Duration::from_secs(60),
            failure_limit: 0,
            requests: None,
        };
        let m = measure(&address, &check, Duration::from_secs(2)).await;
        assert_eq!(m.verdict, Verdict::Inconclusive);
        assert!(m.message.contains("did not answer"), "{}", m.message);
    }
}
