//! The protocol console served at `/inspector/console` (a tab of the inspector), told which
//! stage to connect to. Its script and style are files of their own (`/inspector/console.js`,
//! `/inspector/console.css`): its Content-Security-Policy runs nothing inline.

const CHAT_PAGE_TEMPLATE_HTML: &str = include_str!("../static/index.html");
const STAGE_PLACEHOLDER: &str = "{{stage}}";

/// The page with `stage` in its `<meta name="gateway-stage">`, escaped for an HTML attribute.
pub(crate) fn render(stage: &str) -> String {
    CHAT_PAGE_TEMPLATE_HTML.replace(STAGE_PLACEHOLDER, &escape_attribute(stage))
}

pub(crate) fn escape_attribute(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_carries_its_stage_escaped() {
        let page = render(r#"a"<b>&"#);

        assert!(page.contains(r#"<meta name="gateway-stage" content="a&quot;&lt;b&gt;&amp;">"#));
        assert!(!page.contains(STAGE_PLACEHOLDER));
    }
}
