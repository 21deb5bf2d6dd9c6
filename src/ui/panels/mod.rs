//! One file per panel of the page. Each panel is a component without props:
//! it takes the page's state (`ui::state::PageState`) and the backend
//! (`ui::backend::Backend`) from context, and never imports the page. `chart`
//! is a widget the cost and dilution panels share.

mod ablation;
mod attention;
mod block;
mod chart;
mod cost;
mod diff;
mod dilution;
mod generate;
mod glossary;
mod heads;
mod heads_finder;
mod input;
mod lens;
mod model_grid;
mod next_token;
mod positional;
mod tokenizers;
mod zoom;

pub use ablation::AblationPanel;
pub use attention::AttentionPanel;
pub use block::BlockPanel;
pub use cost::CostPanel;
pub use diff::DiffPanel;
pub use dilution::DilutionPanel;
pub use generate::GeneratePanel;
pub use glossary::{GlossaryPanel, Terms};
pub use heads::HeadsPanel;
pub use heads_finder::{FinderLegend, FinderOverlay, HeadFinderPanel};
pub use input::InputPanel;
pub use lens::LensPanel;
pub use model_grid::ModelGridPanel;
pub use next_token::NextTokenPanel;
pub use positional::PositionsPanel;
pub use tokenizers::TokenizersPanel;
