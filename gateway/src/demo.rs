//! The storefront page of `web/` (`SECKILL_DEMO_UI=1`, under `/demo/`): what a frontend team
//! starts from. Compiled into the binary, so a demo needs no file next to it; off by default,
//! so production gateways serve the API only.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;

/// `(path under /demo/, content type, file)`.
const FILES: [(&str, &str, &str); 3] = [
    (
        "",
        "text/html; charset=utf-8",
        include_str!("../../web/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/app.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../../web/style.css"),
    ),
];

/// The answer to `GET /demo/<rest>` (`rest` is `None` for `/demo` itself), or `None` for a file
/// the page does not have.
pub fn serve(rest: Option<&str>) -> Option<Response<Full<Bytes>>> {
    let Some(rest) = rest else {
        // Relative links in the page resolve against /demo/, not /.
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = StatusCode::PERMANENT_REDIRECT;
        response
            .headers_mut()
            .insert(LOCATION, HeaderValue::from_static("/demo/"));
        return Some(response);
    };
    let rest = if rest == "index.html" { "" } else { rest };
    let (_, content_type, text) = FILES.iter().find(|(path, _, _)| *path == rest)?;
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Some(response)
}
