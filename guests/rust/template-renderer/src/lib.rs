//! The template sandbox: `lmhost-template` compiled to a component, so that
//! rendering a hostile template can exhaust only this instance's memory and
//! time, never the host's.

wit_bindgen::generate!({
    world: "renderer",
    path: "../../../host/wit",
});

use exports::lmhost::renderer::template_renderer::Guest;

struct Renderer;

impl Guest for Renderer {
    fn render(template: String, context_json: String, fuel: u64, max_output_bytes: u64) -> Result<String, String> {
        let budget = lmhost_template::Budget {
            fuel,
            max_output_bytes: usize::try_from(max_output_bytes).unwrap_or(usize::MAX),
            ..lmhost_template::Budget::default()
        };
        lmhost_template::render(&template, &context_json, &budget)
    }
}

export!(Renderer);
