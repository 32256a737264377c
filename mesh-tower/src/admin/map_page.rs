//! The service map page with the graph inlined: the first view is drawn from data in the page,
//! so a browser (or a headless screenshot) shows the map at load, not "loading…".

use crate::telemetry::GraphData;

/// Where the page expects the inlined graph (a JSON `null` when there is none).
const PLACEHOLDER: &str = "/*MESH_GRAPH*/null";
/// Where the page names the workload whose admin endpoint serves it.
const WORKLOAD: &str = "<!--MESH_WORKLOAD-->";

/// `page` with `graph` as the JSON of its `initial-graph` script. `<`, `>` and `&` are
/// written as JSON `\u` escapes, so no value (a peer's error text, say) can close the script
/// element or open another.
/// The workload's name is HTML-escaped into the header.
pub(super) fn render(page: &str, graph: &GraphData, workload: &str) -> String {
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
    let mut name = String::with_capacity(workload.len());
    for c in workload.chars() {
        match c {
            '<' => name.push_str("&lt;"),
            '>' => name.push_str("&gt;"),
            '&' => name.push_str("&amp;"),
            '"' => name.push_str("&quot;"),
            c => name.push(c),
        }
    }
    page.replacen(PLACEHOLDER, &safe, 1)
        .replacen(WORKLOAD, &name, 1)
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
        let out = render(page, &graph, "shop/<b>");
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
        assert!(render(map, &graph, "shop/<b>").contains("shop/&lt;b&gt;"));
    }
}
