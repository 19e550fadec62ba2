//! The one table of keys: for each context, which keys give which action, and the help line.
//! The help screen and the status-bar hints are both generated from it.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::action::Action;
use super::field::Edit;
use super::state::{App, Mode, View};

/// Where a binding applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// Everywhere.
    Global,
    /// Moving around the tree and tensor panes.
    Browse,
    /// While the forward panel is shown.
    Forward,
    /// Typing the filter.
    Filter,
    /// The re-initialize dialog.
    Init,
    /// Typing a path.
    Prompt,
    /// Typing the text a family checkpoint runs on.
    Text,
    /// A yes/no question.
    Ask,
    /// The list of models.
    Models,
    /// The help screen.
    Help,
    /// A long message in a popup.
    Popup,
    /// Any text being typed: the filter, a path, a number in the dialog.
    Field,
}

/// The contexts in the order the help screen lists them.
pub const HELP_CONTEXTS: [Context; 12] = [
    Context::Browse,
    Context::Forward,
    Context::Text,
    Context::Filter,
    Context::Init,
    Context::Prompt,
    Context::Models,
    Context::Field,
    Context::Ask,
    Context::Popup,
    Context::Help,
    Context::Global,
];

/// One line of the help screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HelpLine {
    /// A context's heading.
    Heading(&'static str),
    /// A binding: its keys as written, and what it does.
    Binding(String, &'static str),
}

/// The help screen's lines: a heading per context, then a line per binding. The screen draws
/// these, and scrolling counts them.
#[must_use]
pub fn help_lines() -> Vec<HelpLine> {
    let mut lines = Vec::new();
    for context in HELP_CONTEXTS {
        lines.push(HelpLine::Heading(context.title()));
        for b in KEYMAP.iter().filter(|b| b.context == context) {
            let keys: Vec<String> = b.keys.iter().map(|k| label(*k)).collect();
            lines.push(HelpLine::Binding(keys.join(" "), b.help));
        }
    }
    lines
}

impl Context {
    /// The heading of this context on the help screen.
    #[must_use]
    pub fn title(self) -> &'static str {
        match self {
            Context::Global => "Everywhere",
            Context::Browse => "Tree and tensor panes",
            Context::Forward => "Forward panel",
            Context::Filter => "Filter",
            Context::Init => "Re-initialize dialog",
            Context::Prompt => "Write prompt",
            Context::Text => "Forward text",
            Context::Ask => "Questions",
            Context::Models => "Model list",
            Context::Help => "Help",
            Context::Popup => "Message",
            Context::Field => "Text fields",
        }
    }
}

/// A key: a code with modifiers, or any printable character (for text fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// This code with exactly these modifiers (Shift is ignored for characters).
    Code(KeyCode, KeyModifiers),
    /// Any character without Ctrl or Alt; the action's character is replaced by the one typed.
    AnyChar,
}

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub struct Binding {
    /// Where it applies.
    pub context: Context,
    /// The keys, the first being the one hints show.
    pub keys: &'static [Key],
    /// What they do.
    pub action: Action,
    /// The help text.
    pub help: &'static str,
    /// The short word for the status-bar hints, if the binding is hinted there.
    pub hint: Option<&'static str>,
    /// When the hint is shown.
    pub when: When,
}

/// When a binding's hint shows in the status bar: only where the key does something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// Always.
    Always,
    /// On a tensor with more than one path.
    Shared,
    /// When there is a re-init to undo.
    Undo,
    /// In the histogram view of a tensor.
    Histogram,
    /// In the heatmap view of a tensor.
    Heatmap,
    /// While a second model is compared.
    Comparing,
    /// On a family checkpoint (it runs on a text).
    Family,
    /// On a chain (it runs on a random batch).
    Chain,
    /// On a quantized weight, in the tensor pane.
    Quantized,
    /// When the forward panel's run found a super weight.
    SuperWeight,
    /// While a run is followed (`--trajectory`).
    Trajectory,
}

const fn k(code: KeyCode) -> Key {
    Key::Code(code, KeyModifiers::NONE)
}

const fn c(ch: char) -> Key {
    Key::Code(KeyCode::Char(ch), KeyModifiers::NONE)
}

const fn ctrl(ch: char) -> Key {
    Key::Code(KeyCode::Char(ch), KeyModifiers::CONTROL)
}

const fn bind(
    context: Context,
    keys: &'static [Key],
    action: Action,
    help: &'static str,
    hint: Option<&'static str>,
) -> Binding {
    Binding {
        context,
        keys,
        action,
        help,
        hint,
        when: When::Always,
    }
}

const fn bind_when(
    context: Context,
    keys: &'static [Key],
    action: Action,
    help: &'static str,
    hint: &'static str,
    when: When,
) -> Binding {
    Binding {
        hint: Some(hint),
        when,
        ..bind(context, keys, action, help, None)
    }
}

use Context as X;
use KeyCode as K;

/// Every binding of the app.
#[rustfmt::skip]
pub const KEYMAP: &[Binding] = &[
    bind(X::Global, &[ctrl('c')], Action::ForceQuit, "quit at once", None),
    bind(X::Browse, &[c('q')], Action::Quit, "quit", Some("quit")),
    bind(X::Browse, &[c('?')], Action::ToggleHelp, "help", Some("help")),
    bind(X::Browse, &[k(K::Tab), k(K::BackTab)], Action::FocusNext, "switch pane", Some("pane")),
    bind(X::Browse, &[k(K::Up), c('k')], Action::Up, "up: tree row or values cursor", None),
    bind(X::Browse, &[k(K::Down), c('j')], Action::Down, "down", None),
    bind(X::Browse, &[k(K::Left), c('h')], Action::Left, "collapse / parent; values: left", None),
    bind(X::Browse, &[k(K::Right), c('l')], Action::Right, "expand; values: right", None),
    bind(X::Browse, &[k(K::PageUp)], Action::PageUp, "page up", None),
    bind(X::Browse, &[k(K::PageDown)], Action::PageDown, "page down", None),
    bind(X::Browse, &[k(K::Home), c('g')], Action::Home, "first row", None),
    bind(X::Browse, &[k(K::End), c('G')], Action::End, "last row", None),
    bind(X::Browse, &[k(K::Enter), c(' ')], Action::Toggle, "expand / collapse module", None),
    bind(X::Browse, &[c('/')], Action::StartFilter, "filter names", Some("filter")),
    bind_when(X::Browse, &[c('a')], Action::NextAlias, "next path of a shared tensor", "alias", When::Shared),
    bind(X::Browse, &[c('v')], Action::CycleView, "next view: values / histogram / heatmap / …", Some("view")),
    bind_when(X::Browse, &[c('p')], Action::CyclePart, "quantized weight: values / codes / scales / zeros", "parts", When::Quantized),
    bind_when(X::Browse, &[c('L')], Action::ToggleLog, "histogram: counts / log counts", "log", When::Histogram),
    bind_when(X::Browse, &[c('A')], Action::ToggleHeatScale, "heatmap: 99th percentile of |x| / ±absmax", "scale", When::Heatmap),
    bind_when(X::Browse, &[c('[')], Action::EarlierCheckpoint, "previous checkpoint of a followed run, else slice", "ckpt", When::Trajectory),
    bind(X::Browse, &[c(']')], Action::LaterCheckpoint, "next checkpoint of a followed run, else slice", None),
    bind(X::Browse, &[c('{')], Action::PrevSlice, "previous slice of an N-D tensor", None),
    bind(X::Browse, &[c('}')], Action::NextSlice, "next slice of an N-D tensor", None),
    bind(X::Browse, &[c('f')], Action::Forward, "forward pass (again: hide)", Some("forward")),
    bind(X::Browse, &[c('i')], Action::OpenInit, "re-initialize the selection", Some("init")),
    bind(X::Browse, &[c('z')], Action::ZeroCell, "zero the element under the values cursor (u undoes)", None),
    bind_when(X::Browse, &[c('u')], Action::Undo, "undo the last re-init", "undo", When::Undo),
    bind(X::Browse, &[c('w')], Action::OpenWrite, "write the model to a file", Some("write")),
    bind(X::Browse, &[c('o')], Action::OpenModels, "open another model or file", Some("open")),
    bind(X::Browse, &[c('c')], Action::OpenCompare, "compare with a second model (B)", None),
    bind_when(X::Browse, &[c('d')], Action::CycleSide, "compared tensor: A / B / Δ = B − A", "A/B/Δ", When::Comparing),
    bind(X::Browse, &[k(K::Esc)], Action::Cancel, "clear filter / message", None),
    bind_when(X::Forward, &[c('e')], Action::EditText, "edit the text a family model runs on", "text", When::Family),
    bind_when(X::Forward, &[c('+'), c('=')], Action::BatchUp, "larger random batch", "batch", When::Chain),
    bind(X::Forward, &[c('-')], Action::BatchDown, "smaller random batch", None),
    bind_when(X::Forward, &[c('s')], Action::SeedUp, "next seed", "seed", When::Chain),
    bind(X::Forward, &[c('S')], Action::SeedDown, "previous seed", None),
    bind_when(X::Forward, &[c('p')], Action::CycleProbe, "family: blocks / logit lens / attention map / outliers (arrows move)", "probes", When::Family),
    bind_when(X::Forward, &[c('J')], Action::JumpToSuperWeight, "select the super weight (outliers cursor, else the largest) in the values grid", "super weight", When::SuperWeight),
    bind(X::Forward, &[c('>')], Action::ProbeLayer(1), "attention map: next layer", None),
    bind(X::Forward, &[c('<')], Action::ProbeLayer(-1), "attention map: previous layer", None),
    bind(X::Forward, &[c('}')], Action::ProbeHead(1), "attention map: next head", None),
    bind(X::Forward, &[c('{')], Action::ProbeHead(-1), "attention map: previous head", None),
    bind(X::Filter, &[k(K::Enter)], Action::Submit, "keep the filter", Some("keep")),
    bind(X::Filter, &[k(K::Esc)], Action::Cancel, "clear the filter", Some("clear")),
    bind(X::Filter, &[k(K::Up)], Action::Up, "previous row", None),
    bind(X::Filter, &[k(K::Down)], Action::Down, "next row", None),
    bind_when(X::Filter, &[k(K::Tab)], Action::ToggleChanged, "comparing: changed tensors only", "changed", When::Comparing),
    bind(X::Init, &[k(K::Enter)], Action::Submit, "apply", Some("apply")),
    bind(X::Init, &[k(K::Esc)], Action::Cancel, "cancel", Some("cancel")),
    bind(X::Init, &[k(K::Up), k(K::BackTab)], Action::Up, "previous field", None),
    bind(X::Init, &[k(K::Down), k(K::Tab)], Action::Down, "next field", Some("field")),
    bind(X::Init, &[k(K::Left)], Action::Left, "previous choice / toggle", None),
    bind(X::Init, &[k(K::Right)], Action::Right, "next choice / toggle", Some("change")),
    bind(X::Text, &[k(K::Enter)], Action::Submit, "run the model on the text", Some("run")),
    bind(X::Text, &[k(K::Esc)], Action::Cancel, "keep the last text", Some("cancel")),
    bind(X::Prompt, &[k(K::Enter)], Action::Submit, "write", Some("write")),
    bind(X::Prompt, &[k(K::Esc)], Action::Cancel, "cancel", Some("cancel")),
    bind(X::Models, &[k(K::Up)], Action::Up, "previous model", None),
    bind(X::Models, &[k(K::Down)], Action::Down, "next model", None),
    bind(X::Models, &[k(K::Tab)], Action::Complete, "complete the typed path", Some("complete")),
    bind(X::Models, &[k(K::Enter)], Action::Submit, "open it (or the typed path)", Some("open")),
    bind(X::Models, &[k(K::Esc)], Action::Cancel, "cancel", Some("cancel")),
    bind(X::Field, &[k(K::Backspace)], Action::Edit(Edit::DeleteBack), "delete a character", None),
    bind(X::Field, &[k(K::Delete)], Action::Edit(Edit::DeleteForward), "delete under the cursor", None),
    bind(X::Field, &[ctrl('w')], Action::Edit(Edit::DeleteWord), "delete a word", None),
    bind(X::Field, &[ctrl('u')], Action::Edit(Edit::DeleteToStart), "delete to the start", None),
    bind(X::Field, &[k(K::Left)], Action::Edit(Edit::Left), "cursor left", None),
    bind(X::Field, &[k(K::Right)], Action::Edit(Edit::Right), "cursor right", None),
    bind(X::Field, &[k(K::Home), ctrl('a')], Action::Edit(Edit::Start), "cursor to the start", None),
    bind(X::Field, &[k(K::End), ctrl('e')], Action::Edit(Edit::End), "cursor to the end", None),
    bind(X::Field, &[Key::AnyChar], Action::Type(' '), "type (pasting works too)", None),
    bind(X::Ask, &[c('y')], Action::Yes, "yes", Some("yes")),
    bind(X::Ask, &[c('n'), k(K::Esc)], Action::No, "no", Some("no")),
    bind(X::Popup, &[k(K::Esc), k(K::Enter), c('q')], Action::Cancel, "close", Some("close")),
    bind(X::Popup, &[k(K::Up), c('k')], Action::Up, "scroll up", None),
    bind(X::Popup, &[k(K::Down), c('j')], Action::Down, "scroll down", Some("scroll")),
    bind(X::Help, &[k(K::Esc), c('?'), c('q')], Action::Cancel, "close help", Some("close")),
    bind(X::Help, &[k(K::Up), c('k')], Action::Up, "scroll up", None),
    bind(X::Help, &[k(K::Down), c('j')], Action::Down, "scroll down", None),
    bind(X::Help, &[k(K::PageUp)], Action::PageUp, "page up", None),
    bind(X::Help, &[k(K::PageDown)], Action::PageDown, "page down", None),
];

/// The contexts in force, most specific first.
#[must_use]
pub fn contexts(app: &App) -> Vec<Context> {
    let own = match app.mode {
        Mode::Browse if app.forward.open => vec![X::Forward, X::Browse],
        Mode::Browse => vec![X::Browse],
        Mode::Filter(_) => vec![X::Filter, X::Field],
        Mode::Init(_) => vec![X::Init, X::Field],
        Mode::Write(_) => vec![X::Prompt, X::Field],
        Mode::Text(_) => vec![X::Text, X::Field],
        Mode::Ask(_) => vec![X::Ask],
        Mode::Open(_) => vec![X::Models, X::Field],
        Mode::Help(_) => vec![X::Help],
        Mode::Popup(_) => vec![X::Popup],
    };
    std::iter::once(X::Global).chain(own).collect()
}

/// The action a key press means in `app`'s current contexts.
#[must_use]
pub fn action_for(app: &App, event: KeyEvent) -> Option<Action> {
    if event.kind == KeyEventKind::Release {
        return None;
    }
    let active = contexts(app);
    active.iter().find_map(|context| {
        KEYMAP
            .iter()
            .filter(|b| b.context == *context)
            .find_map(|b| b.keys.iter().find_map(|key| matches(*key, event, b.action)))
    })
}

/// The action if `key` matches `event`, with a typed character filled in.
fn matches(key: Key, event: KeyEvent, action: Action) -> Option<Action> {
    let mods = event.modifiers - KeyModifiers::SHIFT;
    match (key, event.code) {
        (Key::AnyChar, KeyCode::Char(ch))
            if !mods.intersects(KeyModifiers::CONTROL | KeyModifiers::ALT) =>
        {
            Some(Action::Type(ch))
        }
        (Key::Code(code, want), got) if code == got => {
            // Shift is part of the character itself ('G', '?'); for other keys it must match.
            let have = if matches!(got, KeyCode::Char(_)) {
                mods
            } else {
                event.modifiers
            };
            (have == want).then_some(action)
        }
        _ => None,
    }
}

/// How a key is written in help and hints.
#[must_use]
pub fn label(key: Key) -> String {
    let Key::Code(code, mods) = key else {
        return "any key".into();
    };
    let name = match code {
        KeyCode::Char(' ') => "Space".into(),
        KeyCode::Char(ch) => ch.to_string(),
        KeyCode::Up => "↑".into(),
        KeyCode::Down => "↓".into(),
        KeyCode::Left => "←".into(),
        KeyCode::Right => "→".into(),
        KeyCode::PageUp => "PgUp".into(),
        KeyCode::PageDown => "PgDn".into(),
        KeyCode::BackTab => "S-Tab".into(),
        KeyCode::Enter => "Enter".into(),
        KeyCode::Tab => "Tab".into(),
        KeyCode::Esc => "Esc".into(),
        other => other.to_string(),
    };
    if mods.contains(KeyModifiers::CONTROL) {
        format!("Ctrl-{}", name.to_uppercase())
    } else {
        name
    }
}

/// The hinted bindings of the current contexts that do something now, as `(key, word)`.
#[must_use]
pub fn hints(app: &App) -> Vec<(String, &'static str)> {
    let applies = |when: When| match when {
        When::Always => true,
        When::Shared => app
            .selected_param()
            .and_then(|id| app.doc.outline.aliases.get(&id))
            .is_some_and(|paths| paths.len() > 1),
        When::Undo => !app.doc.undo.is_empty(),
        When::Histogram | When::Heatmap => {
            let view = if when == When::Histogram {
                View::Histogram
            } else {
                View::Heatmap
            };
            app.selected_param()
                .is_some_and(|id| app.view_of(id) == view)
                && !app.forward.open
        }
        When::Comparing => app.compare.loaded.is_some(),
        When::Family => app.doc.runs.family().is_some(),
        When::Chain => app.doc.runs.family().is_none(),
        When::SuperWeight => {
            app.forward.open
                && matches!(&app.forward.result, Some(Ok(r))
                    if r.probes.as_ref().is_some_and(|p| !p.super_weights.is_empty()))
        }
        When::Quantized => {
            !app.forward.open
                && app
                    .selected_param()
                    .is_some_and(|id| app.quantized(id).is_some())
        }
        When::Trajectory => !app.forward.open && app.trajectory.is_some(),
    };
    contexts(app)
        .into_iter()
        .flat_map(|context| KEYMAP.iter().filter(move |b| b.context == context))
        .filter(|b| applies(b.when))
        .filter_map(|b| b.hint.map(|word| (label(b.keys[0]), word)))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::{HELP_CONTEXTS, HelpLine, KEYMAP, Key, help_lines};

    #[test]
    fn no_key_is_bound_twice_in_one_context() {
        let mut seen = HashSet::new();
        for b in KEYMAP {
            for key in b.keys {
                let k = match key {
                    Key::Code(code, mods) => format!("{code:?} {mods:?}"),
                    Key::AnyChar => "any".into(),
                };
                assert!(
                    seen.insert((format!("{:?}", b.context), k.clone())),
                    "{k} twice in {:?}",
                    b.context
                );
            }
        }
    }

    #[test]
    fn every_binding_is_on_the_help_screen() {
        for b in KEYMAP {
            assert!(HELP_CONTEXTS.contains(&b.context), "{:?}", b.context);
        }
        let lines = help_lines();
        for b in KEYMAP {
            let keys: Vec<String> = b.keys.iter().map(|k| super::label(*k)).collect();
            let line = HelpLine::Binding(keys.join(" "), b.help);
            assert!(lines.contains(&line), "{line:?} not in help");
        }
    }
}
