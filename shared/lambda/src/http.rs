//! API Gateway HTTP API (payload v2) requests to [`ApiRequest`] and [`ApiResponse`] back.

use lambda_http::{Body, Request, RequestExt, Response};
use pipai_service::api::Api;
use pipai_service::ports::{ApiStore, MarketData, ResultStore};
use pipai_service::{ApiRequest, ApiResponse, Route};

/// The request as the service sees it: the path from `/v1/` (stage removed), the raw query
/// exactly as sent (signatures cover it), lower-case header names, the raw body bytes.
pub fn to_api_request(req: &Request) -> ApiRequest {
    let raw_path = if req.raw_http_path().is_empty() { req.uri().path() } else { req.raw_http_path() };
    ApiRequest {
        method: req.method().as_str().to_string(),
        path: ApiRequest::normalize_path(raw_path),
        raw_query: req.uri().query().unwrap_or_default().to_string(),
        headers: req
            .headers()
            .iter()
            .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_ascii_lowercase(), v.to_string())))
            .collect(),
        body: req.body().as_ref().to_vec(),
    }
}

pub fn to_http_response(resp: ApiResponse) -> Response<Body> {
    let mut builder = Response::builder().status(resp.status);
    for (k, v) in &resp.headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    builder.body(Body::from(resp.body)).expect("status and headers are valid")
}

/// Serves one API Gateway request for `route`.
pub async fn handle<S, R, M>(
    api: &Api<S, R, M>,
    route: Route,
    req: Request,
) -> Result<Response<Body>, lambda_http::Error>
where
    S: ApiStore,
    R: ResultStore,
    M: MarketData,
{
    let request = to_api_request(&req);
    let now = pipai_service::clock::now_ms();
    let response = api.handle(route, &request, now).await;
    tracing::info!(method = %request.method, path = %request.path, status = response.status, "request");
    Ok(to_http_response(response))
}
