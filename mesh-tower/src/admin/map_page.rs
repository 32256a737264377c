//! The service map page with the graph inlined: the first view is drawn from data in the page,
//! so a browser (or a headless screenshot) shows the map at load, not "loading…".

use crate::telemetry::GraphData;

/// Where the page expects the inlined graph (a JSON `null` when there is none).
const PLACEHOLDER: &str = "/*MESH_GRAPH*/null";
/// Where the page names the workload whose admin endpoint serves it.
const WORKLOAD: &str = "<!--MESH_WORKLOAD-->";
/// Where the page links to the admin endpoints of the process' other workloads.
const SIBLINGS: &str = "<!--MESH_SIBLINGS-->";

/// `page` with `graph` as the JSON of its `initial-graph` script. `<`, `>` and `&` are
/// written as JSON `\u` escapes, so no value (a peer's error text, say) can close the script
/// element or open another.
/// The workload's name is HTML-escaped into the header, followed by links to the admin
/// endpoints of the process' other workloads (`siblings`), if any.
pub(super) fn render(
    page: &str,
    graph: &GraphData,
    workload: &str,
    siblings: &[(String, http::Uri)],
) -> String {
    let json = serde_json::to_string(graph).unwrap_or_else(|_| "null".to_owned());
    let mut safe = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => safe.push_str("\\u003c"),
            '>' => safe.push_str("\\u003e"),
            '&' => safe.push_str("\\u0026"),
            c => safe.push(c),
        }
    }
    let links = if siblings.is_empty() {
        String::new()
    } else {
        let links: Vec<String> = siblings
            .iter()
            .map(|(name, admin)| {
                format!(
                    "<a href=\"{}\" data-workload=\"{}\">{}</a>",
                    escape(&admin.to_string()),
                    escape(name),
                    escape(name)
                )
            })
            .collect();
        format!(
            "<span id=\"siblings\" title=\"the other workloads of this process, each with its own admin endpoint\">also in this process: {}</span>",
            links.join(", ")
        )
    };
    page.replacen(PLACEHOLDER, &safe, 1)
        .replacen(WORKLOAD, &escape(workload), 1)
        .replacen(SIBLINGS, &links, 1)
}

/// `text` with HTML's special characters escaped (for text and quoted attribute values).
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inlines_the_graph_and_escapes_markup() {
        let page =
            r#"<script id="initial-graph" type="application/json">/*MESH_GRAPH*/null</script>"#;
        let graph = GraphData {
            peer_errors: vec!["</script><script>alert(1)</script> & more".into()],
            ..GraphData::default()
        };
        let out = render(page, &graph, "shop/<b>", &[]);
        assert_eq!(out.matches("</script>").count(), 1, "{out}");
        let json = out
            .trim_start_matches(r#"<script id="initial-graph" type="application/json">"#)
            .trim_end_matches("</script>");
        let back: GraphData = serde_json::from_str(json).unwrap();
        assert_eq!(back.peer_errors, graph.peer_errors);
        // The embedded page has exactly one of each placeholder.
        let map = super::super::server::SERVICE_MAP;
        assert_eq!(map.matches(PLACEHOLDER).count(), 1);
        assert_eq!(map.matches(WORKLOAD).count(), 1);
        assert!(render(map, &graph, "shop/<b>", &[]).contains("shop/&lt;b&gt;"));
        assert_eq!(map.matches(SIBLINGS).count(), 1);
        assert!(!render(map, &graph, "shop/a", &[]).contains("id=\"siblings\""));
    }

    #[test]
    fn links_the_other_workloads_of_the_process() {
        let siblings = [
            (
                "shop/frontend".to_owned(),
                "http://127.0.0.1:15001".parse().unwrap(),
            ),
            (
                "shop/\"x\"".to_owned(),
                "http://127.0.0.1:15002".parse().unwrap(),
            ),
        ];
        let out = render(
            super::super::server::SERVICE_MAP,
            &GraphData::default(),
            "shop/checkout",
            &siblings,
        );
        assert!(out.contains("admin of shop/checkout"), "{out}");
        assert!(
            out.contains(
                "<a href=\"http://127.0.0.1:15001/\" data-workload=\"shop/frontend\">shop/frontend</a>"
            ),
            "{out}"
        );
        assert!(out.contains(">shop/&quot;x&quot;</a>"), "{out}");
    }
}
