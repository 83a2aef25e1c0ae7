//! The status page on `GET /`: a small self-contained HTML page (no external assets)
//! naming the node, its version and regions, and, for the connection that asked, the
//! TLS version and the negotiated key-exchange group, so anyone with a browser can see
//! post-quantum TLS at work.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use hyper::{Method, Request, Response};

use crate::http::Connection;

/// Content type of the status page.
pub const CONTENT_TYPE_HTML: &str = "text/html; charset=utf-8";

/// Name shown when the node has none of its own.
pub const DEFAULT_NODE_NAME: &str = "keyfence";

/// Whether `req` asks for the status page: `GET` or `HEAD` of `/` with no query. The
/// AWS protocols keyfence speaks always `POST`, so nothing an SDK sends matches.
pub fn is_status_request<B>(req: &Request<B>) -> bool {
    (req.method() == Method::GET || req.method() == Method::HEAD)
        && req.uri().path() == "/"
        && req.uri().query().is_none()
}

/// What the page shows.
#[derive(Debug, Clone)]
pub struct Status<'a> {
    /// The node's name.
    pub name: &'a str,
    /// The keyfence version.
    pub version: &'a str,
    /// The regions this node serves.
    pub regions: &'a [&'a str],
    /// The asking connection.
    pub connection: &'a Connection,
}

/// The HTML page for `status`.
pub fn render(status: &Status<'_>) -> String {
    let name = escape(status.name);
    let regions = status
        .regions
        .iter()
        .map(|r| escape(r))
        .collect::<Vec<_>>()
        .join(", ");
    let conn = status.connection;
    let pq = if conn.post_quantum() {
        "yes (hybrid ML-KEM)"
    } else {
        "no (classical only)"
    };
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{name} status</title>\n\
         <style>body{{font-family:sans-serif;margin:2em}}th{{text-align:left;padding-right:1em}}</style>\n\
         </head>\n<body>\n<h1>{name}</h1>\n\
         <p>A key management service speaking the AWS KMS API over post-quantum TLS. \
         Point an AWS SDK or the AWS CLI at this address.</p>\n<table>\n\
         <tr><th>Version</th><td id=\"version\">{version}</td></tr>\n\
         <tr><th>Regions</th><td id=\"regions\">{regions}</td></tr>\n\
         <tr><th>Your TLS version</th><td id=\"tls-version\">{tls}</td></tr>\n\
         <tr><th>Your key exchange</th><td id=\"key-exchange\">{group}</td></tr>\n\
         <tr><th>Post-quantum</th><td id=\"post-quantum\">{pq}</td></tr>\n\
         </table>\n</body>\n</html>\n",
        version = escape(status.version),
        tls = escape(conn.tls_version),
        group = escape(conn.group),
    )
}

/// The `200` response carrying the page (an empty body for `HEAD`).
pub fn response(status: &Status<'_>, head_only: bool) -> Response<Full<Bytes>> {
    let body = if head_only {
        Bytes::new()
    } else {
        Bytes::from(render(status))
    };
    let mut resp = Response::new(Full::new(body));
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_HTML));
    // Per-connection content: never cached. No scripts, no outside resources.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
    );
    resp
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection(group: &'static str) -> Connection {
        Connection {
            peer: "127.0.0.1:4000".parse().unwrap(),
            tls_version: "TLS 1.3",
            group,
            peer_certificate: None,
        }
    }

    #[test]
    fn page_names_node_version_regions_and_this_connection() {
        let conn = connection("X25519MLKEM768");
        let page = render(&Status {
            name: "eu-node-1",
            version: "1.2.3",
            regions: &["eu-central-1", "eu-west-1"],
            connection: &conn,
        });
        assert!(page.contains("<h1>eu-node-1</h1>"), "{page}");
        assert!(page.contains("<td id=\"version\">1.2.3</td>"), "{page}");
        assert!(page.contains("eu-central-1, eu-west-1"), "{page}");
        assert!(
            page.contains("<td id=\"tls-version\">TLS 1.3</td>"),
            "{page}"
        );
        assert!(page.contains("<td id=\"key-exchange\">X25519MLKEM768</td>"));
        assert!(page.contains("yes (hybrid ML-KEM)"));
        assert!(!page.contains("http://") && !page.contains("https://"));
        let classical = connection("X25519");
        let page = render(&Status {
            name: "n",
            version: "1",
            regions: &[],
            connection: &classical,
        });
        assert!(page.contains("no (classical only)"));
    }

    #[test]
    fn names_are_escaped() {
        let conn = connection("X25519MLKEM768");
        let page = render(&Status {
            name: "<script>&\"'",
            version: "1",
            regions: &["r"],
            connection: &conn,
        });
        assert!(page.contains("&lt;script&gt;&amp;&quot;&#39;"), "{page}");
        assert!(!page.contains("<script>"));
    }

    #[test]
    fn only_get_or_head_of_the_root_is_the_page() {
        let req = |method: Method, uri: &str| {
            Request::builder().method(method).uri(uri).body(()).unwrap()
        };
        assert!(is_status_request(&req(Method::GET, "/")));
        assert!(is_status_request(&req(Method::HEAD, "/")));
        assert!(!is_status_request(&req(Method::POST, "/")));
        assert!(!is_status_request(&req(Method::GET, "/metrics")));
        assert!(!is_status_request(&req(
            Method::GET,
            "/?Action=GetCallerIdentity"
        )));
    }
}
