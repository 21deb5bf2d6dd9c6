//! One file per panel of the page. Each panel is a component without props:
//! it takes the page's state (`ui::state::PageState`) and the backend
//! (`ui::backend::Backend`) from context, and never imports the page. `chart`
//! is a widget the cost and dilution panels share.

mod attention;
mod block;
mod chart;
mod cost;
mod dilution;
mod generate;
mod glossary;
mod heads;
mod input;
mod model_grid;
mod next_token;
mod positional;
mod tokenizers;
mod zoom;

pub use attention::AttentionPanel;
pub use block::BlockPanel;
pub use cost::CostPanel;
pub use dilution::DilutionPanel;
pub use generate::GeneratePanel;
pub use glossary::{GlossaryPanel, Terms};
pub use heads::HeadsPanel;
pub use input::InputPanel;
pub use model_grid::ModelGridPanel;
pub use next_token::NextTokenPanel;
pub use positional::PositionsPanel;
pub use tokenizers::TokenizersPanel;
