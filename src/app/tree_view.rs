//! What the tree pane shows of an [`Outline`]: which modules are open, the filter, the rows that
//! follow from both, the selected node and the first row on screen. Every move says whether it
//! changed anything, so the caller knows when to fetch statistics or redraw.

use super::outline::{NodeKind, Outline};
use super::scroll::{Scroll, Step};

/// Modules with at most this many nodes open fully at start; bigger ones show their first level.
const OPEN_ALL_NODES: usize = 300;

/// The tree pane's state over one outline.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreeView {
    opened: Vec<bool>,
    visible: Vec<usize>,
    selected: usize,
    offset: usize,
    filter: String,
    /// With a comparison, the nodes "changed only" keeps.
    only: Option<Vec<bool>>,
}

impl TreeView {
    /// A small tree fully open, a big one at its first level, the first parameter selected.
    #[must_use]
    pub fn new(outline: &Outline, page: usize) -> TreeView {
        // Counted over the model's own nodes: a vocabulary in the metadata does not close its
        // layers.
        let model_nodes = outline.nodes.first().map_or(0, |root| root.end);
        let all = model_nodes <= OPEN_ALL_NODES;
        let opened = outline
            .nodes
            .iter()
            .enumerate()
            // Metadata arrays start closed however small the tree: their items are rarely the
            // point, and a vocabulary would push the tensors off the screen.
            .map(|(i, n)| {
                let info = matches!(n.kind, NodeKind::Info { .. });
                n.has_children(i) && (n.depth == 0 || (all && !info))
            })
            .collect();
        let mut view = TreeView {
            opened,
            ..TreeView::default()
        };
        view.visible = outline.visible(&view.opened, "");
        let first = view
            .visible
            .iter()
            .copied()
            .find(|&i| outline.nodes[i].param().is_some())
            .unwrap_or(0);
        view.select(first, page);
        view
    }

    /// The selected node.
    #[must_use]
    pub fn selected(&self) -> usize {
        self.selected
    }

    /// The nodes on screen, in order.
    #[must_use]
    pub fn visible(&self) -> &[usize] {
        &self.visible
    }

    /// The filter (empty: none).
    #[must_use]
    pub fn filter(&self) -> &str {
        &self.filter
    }

    /// The first row on screen.
    #[must_use]
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Whether "changed only" is on.
    #[must_use]
    pub fn changed_only(&self) -> bool {
        self.only.is_some()
    }

    /// Whether a filter or "changed only" picks the rows.
    fn filtering(&self) -> bool {
        !self.filter.is_empty() || self.only.is_some()
    }

    /// Whether node `i` is open (a filter shows every kept node open).
    #[must_use]
    pub fn is_open(&self, i: usize) -> bool {
        self.filtering() || self.opened.get(i).copied().unwrap_or(false)
    }

    /// The selection's row among the visible ones.
    #[must_use]
    pub fn row(&self) -> usize {
        self.visible
            .iter()
            .position(|&n| n == self.selected)
            .unwrap_or(0)
    }

    /// Selects `node`, the window following; whether the selection changed.
    pub fn select(&mut self, node: usize, page: usize) -> bool {
        let changed = node != self.selected;
        self.selected = node;
        self.follow(page);
        changed
    }

    /// Keeps the selection on a page of `page` rows.
    pub fn follow(&mut self, page: usize) {
        self.offset = super::scroll::follow(self.offset, self.row(), page);
    }

    /// Moves the selection by rows, pages or to an end.
    pub fn step(&mut self, step: Step, page: usize) -> bool {
        if self.visible.is_empty() {
            return false;
        }
        let mut scroll = Scroll {
            cursor: self.row(),
            offset: self.offset,
        };
        scroll.step(step, self.visible.len(), page);
        self.offset = scroll.offset;
        self.select(self.visible[scroll.cursor], page)
    }

    /// ←: closes an open module, else goes to the parent.
    pub fn collapse_or_parent(&mut self, outline: &Outline, page: usize) -> bool {
        let node = self.selected;
        if self.opened[node] && outline.nodes[node].has_children(node) && !self.filtering() {
            self.opened[node] = false;
            self.refresh(outline, page);
            true
        } else if let Some(parent) = outline.nodes[node].parent {
            self.select(parent, page)
        } else {
            false
        }
    }

    /// →: opens a closed module, else steps into it.
    pub fn expand_or_enter(&mut self, outline: &Outline, page: usize) -> bool {
        let node = self.selected;
        if !outline.nodes[node].has_children(node) {
            return false;
        }
        if self.is_open(node) {
            self.step(Step::By(1), page)
        } else {
            self.opened[node] = true;
            self.refresh(outline, page);
            true
        }
    }

    /// Enter: opens or closes the selected module.
    pub fn toggle(&mut self, outline: &Outline, page: usize) -> bool {
        let node = self.selected;
        if !outline.nodes[node].has_children(node) {
            return false;
        }
        self.opened[node] ^= true;
        self.refresh(outline, page);
        true
    }

    /// Sets the filter and selects its first match (not just an ancestor of one).
    pub fn set_filter(&mut self, outline: &Outline, filter: &str, page: usize) -> bool {
        if filter == self.filter {
            return false;
        }
        filter.clone_into(&mut self.filter);
        self.refresh(outline, page);
        if !filter.is_empty() {
            self.select_first_kept(outline, page);
        }
        // Every node holds the empty string: without a filter the selection stays where it is.
        true
    }

    /// Keeps only the nodes `only` marks (with their ancestors), or drops that condition; the
    /// first kept node is selected.
    pub fn set_only(&mut self, outline: &Outline, only: Option<Vec<bool>>, page: usize) -> bool {
        if only == self.only {
            return false;
        }
        self.only = only;
        self.refresh(outline, page);
        if self.only.is_some() {
            self.select_first_kept(outline, page);
        }
        true
    }

    /// Selects the first row kept for itself (not just as an ancestor of one).
    fn select_first_kept(&mut self, outline: &Outline, page: usize) {
        let only = self.only.as_deref();
        let hit = self.visible.iter().copied().find(|&i| {
            (self.filter.is_empty() || outline.matches(i, &self.filter))
                && only.is_none_or(|o| o.get(i).copied().unwrap_or(false))
        });
        if let Some(node) = hit {
            self.select(node, page);
        }
    }

    /// Opens every ancestor of `node`, and drops a filter (and "changed only") that hides it;
    /// selects it.
    pub fn reveal(&mut self, outline: &Outline, node: usize, page: usize) -> bool {
        let mut parent = outline.nodes[node].parent;
        while let Some(p) = parent {
            self.opened[p] = true;
            parent = outline.nodes[p].parent;
        }
        self.visible = outline.visible_where(&self.opened, &self.filter, self.only.as_deref());
        if !self.visible.contains(&node) {
            self.filter.clear();
            self.only = None;
            self.visible = outline.visible(&self.opened, "");
        }
        self.select(node, page)
    }

    /// Recomputes the rows after a fold or a filter, keeping the selection on screen: the nearest
    /// shown ancestor, else the first row.
    fn refresh(&mut self, outline: &Outline, page: usize) {
        self.visible = outline.visible_where(&self.opened, &self.filter, self.only.as_deref());
        if !self.visible.contains(&self.selected) {
            let mut node = Some(self.selected);
            while let Some(n) = node {
                if self.visible.contains(&n) {
                    break;
                }
                node = outline.nodes.get(n).and_then(|n| n.parent);
            }
            self.selected = node.or_else(|| self.visible.first().copied()).unwrap_or(0);
        }
        self.follow(page);
    }
}

#[cfg(test)]
mod tests {
    use super::TreeView;
    use crate::app::outline::Outline;
    use crate::app::scroll::Step;
    use crate::model::demos;

    fn rgnet() -> (Outline, TreeView) {
        let outline = Outline::new(
            &demos::build("rgnet", 0).unwrap(),
            &crate::app::extras::Extras::default(),
        );
        let view = TreeView::new(&outline, 5);
        (outline, view)
    }

    fn path<'a>(outline: &'a Outline, view: &TreeView) -> &'a str {
        &outline.nodes[view.selected()].path
    }

    #[test]
    fn a_long_metadata_array_neither_opens_nor_closes_the_model() {
        use crate::app::extras::Extras;
        use crate::io::gguf::Value;
        use crate::io::gguf::value::{Array, ValueType};
        let tokens = Array {
            item: ValueType::String,
            len: 1000,
            head: (0..1000).map(|i| Value::String(format!("t{i}"))).collect(),
        };
        let extras = Extras {
            adapted: Vec::new(),
            gguf: vec![("tokenizer.ggml.tokens".into(), Value::Array(tokens))],
            values: Vec::new(),
        };
        let outline = Outline::new(&demos::build("rgnet", 0).unwrap(), &extras);
        let view = TreeView::new(&outline, 5);
        let model_end = outline.nodes[0].end;
        assert!((0..model_end).all(|i| view.is_open(i) || !outline.nodes[i].has_children(i)));
        assert!(view.is_open(model_end), "the metadata heading is open");
        assert!(!view.is_open(model_end + 1), "the array is closed");
        assert_eq!(view.visible().len(), model_end + 2);
    }

    #[test]
    fn a_262k_vocabulary_is_filtered_by_token_text_without_lag() {
        use crate::app::extras::Extras;
        use crate::io::gguf::Value;
        use crate::io::gguf::value::{Array, ValueType};
        const TOKENS: usize = 262_144;
        let head = (0..TOKENS)
            .map(|i| {
                Value::String(if i == 7042 {
                    "ĠParis".into()
                } else {
                    format!("▁w{i}")
                })
            })
            .collect();
        let tokens = Array {
            item: ValueType::String,
            len: TOKENS as u64,
            head,
        };
        let extras = Extras {
            adapted: Vec::new(),
            gguf: vec![("tokenizer.ggml.tokens".into(), Value::Array(tokens))],
            values: Vec::new(),
        };
        let outline = Outline::new(&demos::build("mlp", 0).unwrap(), &extras);
        let mut view = TreeView::new(&outline, 20);
        let mut slowest = std::time::Duration::ZERO;
        for end in 1..="Paris".len() {
            let start = std::time::Instant::now();
            view.set_filter(&outline, &"Paris"[..end], 20);
            slowest = slowest.max(start.elapsed());
        }
        assert_eq!(path(&outline, &view), "tokenizer.ggml.tokens[7042]");
        eprintln!("slowest key of /Paris over {TOKENS} tokens: {slowest:?}");
        // The worst case: a key every token holds.
        view.set_filter(&outline, "", 20);
        let start = std::time::Instant::now();
        view.set_filter(&outline, "w", 20);
        let every = start.elapsed();
        eprintln!("/w, held by every token: {every:?}");
        slowest = slowest.max(every);
        // Debug builds on a shared machine: a generous bound that still catches a per-key
        // rebuild of every row's text (the release build is several times faster).
        assert!(slowest.as_millis() < 500, "{slowest:?}");
    }

    #[test]
    fn moves_report_whether_they_changed_anything() {
        let (outline, mut view) = rgnet();
        assert_eq!(path(&outline, &view), "0.block0.0.weight");
        assert!(view.step(Step::By(1), 5));
        assert_eq!(path(&outline, &view), "0.block0.0.bias");
        assert!(view.step(Step::First, 5));
        assert!(!view.step(Step::By(-1), 5), "the top row stays");
        assert!(view.step(Step::Last, 5));
        assert_eq!(path(&outline, &view), "1.bias");
        assert_eq!(view.offset(), view.visible().len() - 5);
    }

    #[test]
    fn folding_keeps_the_selection_visible() {
        let (outline, mut view) = rgnet();
        assert!(view.collapse_or_parent(&outline, 5), "a parameter goes up");
        assert_eq!(path(&outline, &view), "0.block0.0");
        let rows = view.visible().len();
        assert!(view.collapse_or_parent(&outline, 5));
        assert_eq!(view.visible().len(), rows - 2);
        assert!(view.expand_or_enter(&outline, 5));
        assert_eq!(view.visible().len(), rows);
        assert!(!view.toggle(&outline, 5) || view.visible().len() == rows - 2);
    }

    #[test]
    fn a_filter_selects_its_first_match_and_reveal_drops_a_hiding_filter() {
        let (outline, mut view) = rgnet();
        assert!(view.set_filter(&outline, "block1.*.bias", 5));
        assert_eq!(path(&outline, &view), "0.block1.0.bias");
        assert!(
            !view.set_filter(&outline, "block1.*.bias", 5),
            "same filter"
        );
        let hidden = outline.find("1.weight", true).unwrap();
        assert!(view.reveal(&outline, hidden, 5));
        assert_eq!(view.filter(), "");
        assert_eq!(path(&outline, &view), "1.weight");
    }
}
