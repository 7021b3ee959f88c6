//! The router's own answers: a small page that says what was missing and
//! what to do, readable in a browser and by curl alike.

use super::Refusal;

fn reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        404 => "Not Found",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        502 => "Bad Gateway",
        _ => "Error",
    }
}

/// Escapes text for HTML.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '&' => o.push_str("&amp;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// A complete response for `r`, closing the connection.
pub fn render(r: &Refusal) -> Vec<u8> {
    let body = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{status} {title}</title></head>\n\
         <body style=\"font-family:sans-serif;max-width:40em;margin:3em auto\">\n\
         <h1>{status} {title}</h1>\n<p>{detail}</p>\n<p><small>gvpod router</small></p>\n</body></html>\n",
        status = r.status,
        title = esc(&r.title),
        detail = esc(&r.detail),
    );
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\nX-Gvpod-Router: {}\r\n\r\n",
        r.status,
        reason(r.status),
        body.len(),
        // One line a script can read without parsing the page.
        r.title.replace(['\r', '\n'], " "),
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_escape_what_they_quote_and_frame_themselves() {
        let r = Refusal::new(404, "no pod named <x>", "start it with `gvpod start x`");
        let page = String::from_utf8(render(&r)).unwrap();
        let (head, body) = page.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
        assert!(body.contains("no pod named &lt;x&gt;") && !body.contains("<x>"));
    }
}
