//! The re-initialize dialog: a scheme picked by typing part of its name (or ←/→), its arguments
//! (numbers typed, enumerations cycled), what to write (weights; biases with the same scheme,
//! nn.Linear's default, or kept), and the seed. Turns into an [`InitPlan`] or says why not.

use super::error::AppError;
use super::field::{Edit, Field};
use crate::model::init::{InitError, InitPlan, InitScheme, NONLINEARITIES};

/// The values of the Kaiming schemes' `mode`.
const MODES: [&str; 2] = ["fan_in", "fan_out"];

/// What happens to the biases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Biases {
    /// The dialog's scheme, as for the weights.
    Same,
    /// nn.Linear's own bias init, U(±1/√fan_in): what fan-based schemes leave them at.
    Default,
    /// Left as they are.
    Keep,
}

impl Biases {
    const ALL: [Biases; 3] = [Biases::Same, Biases::Default, Biases::Keep];

    /// The words the dialog shows.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Biases::Same => "same scheme",
            Biases::Default => "default (nn.Linear's)",
            Biases::Keep => "keep as they are",
        }
    }
}

/// One argument of the scheme.
#[derive(Debug, Clone, PartialEq)]
pub enum ArgValue {
    /// A number, typed.
    Text(Field),
    /// One of a few names, cycled with ←/→.
    Choice {
        /// The names.
        options: &'static [&'static str],
        /// The one chosen.
        index: usize,
    },
}

impl ArgValue {
    /// The value as text.
    #[must_use]
    pub fn text(&self) -> &str {
        match self {
            ArgValue::Text(field) => field.value(),
            ArgValue::Choice { options, index } => options[*index],
        }
    }
}

/// One field of the dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitField {
    /// The scheme: typed to filter, ←/→ to cycle.
    Scheme,
    /// The scheme's argument at this position.
    Arg(usize),
    /// Whether weights are re-initialized.
    Weights,
    /// What happens to biases.
    Biases,
    /// The seed, typed.
    Seed,
}

/// The re-initialize dialog.
#[derive(Debug, Clone, PartialEq)]
pub struct InitDialog {
    /// The module path the plan applies to.
    pub path: String,
    /// Whether that module is a single layer (its own weight and bias, no submodules), so that
    /// the targets can be named as tensors: `2.weight`.
    pub layer: bool,
    /// What was typed to find the scheme.
    pub query: Field,
    /// The scheme chosen, one of [`InitScheme::ALL`].
    pub scheme: &'static str,
    /// The scheme's arguments, PyTorch's defaults to start.
    pub args: Vec<(&'static str, ArgValue)>,
    /// Re-initialize weights.
    pub weights: bool,
    /// What happens to biases.
    pub biases: Biases,
    /// Whether the user chose `biases` (else it follows the scheme).
    pub biases_chosen: bool,
    /// The seed as typed.
    pub seed: Field,
    /// The field with the cursor.
    pub field: usize,
    /// Why the last submit was refused or failed (raw: escaped where drawn).
    pub error: Option<String>,
}

/// Whether `scheme` needs a tensor of two dimensions or more (its fans), so a bias cannot take it.
#[must_use]
pub fn fan_based(scheme: &str) -> bool {
    scheme.starts_with("xavier") || scheme.starts_with("kaiming") || scheme == "orthogonal"
}

impl InitDialog {
    /// A dialog for the module at `path`; `weights`/`biases` say which tensors were selected
    /// (both for a module).
    #[must_use]
    pub fn new(path: String, layer: bool, weights: bool, biases: bool) -> InitDialog {
        let mut dialog = InitDialog {
            path,
            layer,
            query: Field::default(),
            scheme: InitScheme::ALL[0],
            args: Vec::new(),
            weights,
            biases: if biases { Biases::Same } else { Biases::Keep },
            // One tensor selected: that one only, whatever the scheme.
            biases_chosen: !(weights && biases),
            seed: Field::with_default("0"),
            field: 0,
            error: None,
        };
        dialog.choose(InitScheme::ALL[0]);
        dialog
    }

    /// This dialog with the scheme, arguments and seed of `last` (the targets stay this one's).
    #[must_use]
    pub fn remembering(mut self, last: &InitDialog) -> InitDialog {
        self.scheme = last.scheme;
        // Remembered values are this dialog's defaults: typing replaces them.
        self.args = last
            .args
            .iter()
            .map(|(name, value)| {
                let value = match value {
                    ArgValue::Text(field) => ArgValue::Text(field.as_default()),
                    choice @ ArgValue::Choice { .. } => choice.clone(),
                };
                (*name, value)
            })
            .collect();
        self.seed = last.seed.as_default();
        if !self.biases_chosen {
            self.biases = if last.biases_chosen && self.weights {
                last.biases
            } else {
                self.follow_scheme()
            };
        }
        self
    }

    /// The dialog's fields in order, for the scheme now chosen.
    #[must_use]
    pub fn fields(&self) -> Vec<InitField> {
        let mut fields = vec![InitField::Scheme];
        fields.extend((0..self.args.len()).map(InitField::Arg));
        fields.extend([InitField::Weights, InitField::Biases, InitField::Seed]);
        fields
    }

    /// The field with the cursor.
    #[must_use]
    pub fn current(&self) -> InitField {
        let fields = self.fields();
        fields[self.field.min(fields.len() - 1)]
    }

    /// The schemes whose name holds what was typed (before any `:arguments`), in menu order.
    #[must_use]
    pub fn candidates(&self) -> Vec<&'static str> {
        let typed = self.query.value();
        let query = typed.split_once(':').map_or(typed, |(name, _)| name);
        let query = query.trim().to_lowercase();
        InitScheme::ALL
            .into_iter()
            .filter(|name| name.contains(query.as_str()))
            .collect()
    }

    /// What submitting writes, in words: `2.weight`, `the biases under 0.block1`, `the model`.
    #[must_use]
    pub fn target(&self) -> String {
        let module = if self.path.is_empty() {
            "the model".to_owned()
        } else {
            self.path.clone()
        };
        let dot = |local: &str| {
            if self.path.is_empty() {
                local.to_owned()
            } else {
                format!("{}.{local}", self.path)
            }
        };
        let biases = self.biases != Biases::Keep;
        match (self.layer, self.weights, biases) {
            (_, true, true) | (_, false, false) => module,
            (true, true, false) => dot("weight"),
            (true, false, true) => dot("bias"),
            (false, true, false) => format!("the weights under {module}"),
            (false, false, true) => format!("the biases under {module}"),
        }
    }

    /// Switches to `scheme`, with PyTorch's default arguments.
    pub fn choose(&mut self, scheme: &'static str) {
        self.scheme = scheme;
        self.args = InitScheme::with_defaults(scheme)
            .map(|s| s.arguments())
            .unwrap_or_default()
            .into_iter()
            .map(|(name, text)| {
                let options: Option<&'static [&'static str]> = match name {
                    "mode" => Some(&MODES),
                    "nonlinearity" => Some(&NONLINEARITIES),
                    _ => None,
                };
                let value = match options {
                    Some(options) => ArgValue::Choice {
                        options,
                        index: options.iter().position(|o| *o == text).unwrap_or(0),
                    },
                    None => ArgValue::Text(Field::with_default(&text)),
                };
                (name, value)
            })
            .collect();
        if !self.biases_chosen {
            self.biases = self.follow_scheme();
        }
    }

    /// The biases' fate when the user did not choose it: fan-based schemes cannot take a 1-D
    /// bias, so it keeps nn.Linear's default.
    fn follow_scheme(&self) -> Biases {
        if fan_based(self.scheme) {
            Biases::Default
        } else {
            Biases::Same
        }
    }

    /// ←/→ on the field with the cursor: the previous or next scheme among the candidates, value
    /// or bias choice; a toggle for weights; the cursor in a text field.
    pub fn cycle(&mut self, forward: bool) {
        let step = |i: usize, n: usize| {
            if forward {
                (i + 1) % n.max(1)
            } else {
                (i + n.max(1) - 1) % n.max(1)
            }
        };
        match self.current() {
            InitField::Scheme => {
                let all = self.candidates();
                let list = if all.is_empty() {
                    InitScheme::ALL.to_vec()
                } else {
                    all
                };
                let at = list.iter().position(|s| *s == self.scheme);
                let next = at.map_or(0, |i| step(i, list.len()));
                self.choose(list[next]);
            }
            InitField::Arg(i) => {
                match &mut self.args[i].1 {
                    ArgValue::Choice { options, index } => *index = step(*index, options.len()),
                    ArgValue::Text(field) => {
                        field.edit(if forward { Edit::Right } else { Edit::Left });
                    }
                }
                self.drop_typed_arguments();
            }
            InitField::Weights => self.weights ^= true,
            InitField::Biases => {
                let at = Biases::ALL.iter().position(|b| *b == self.biases);
                self.biases = Biases::ALL[at.map_or(0, |i| step(i, Biases::ALL.len()))];
                self.biases_chosen = true;
            }
            InitField::Seed => {
                self.seed
                    .edit(if forward { Edit::Right } else { Edit::Left });
            }
        }
        self.error = None;
    }

    /// A text edit on the field with the cursor: the scheme's filter, a number, the seed.
    pub fn edit(&mut self, edit: Edit) {
        match self.current() {
            InitField::Scheme => {
                if self.query.edit(edit) {
                    self.follow_query();
                }
            }
            InitField::Arg(i) => {
                if let ArgValue::Text(field) = &mut self.args[i].1
                    && field.edit(edit)
                {
                    self.drop_typed_arguments();
                }
            }
            InitField::Weights | InitField::Biases => {
                if edit == Edit::Insert(' ') {
                    self.cycle(true);
                }
            }
            InitField::Seed => {
                if !matches!(edit, Edit::Insert(ch) if !ch.is_ascii_digit()) {
                    self.seed.edit(edit);
                }
            }
        }
        self.error = None;
    }

    /// The scheme typed with arguments (`normal:std=0.02`), read by the command line's parser;
    /// `None` when what was typed is only (part of) a name.
    #[must_use]
    pub fn typed_scheme(&self) -> Option<Result<InitScheme, InitError>> {
        let typed = self.query.value();
        typed.contains(':').then(|| typed.parse::<InitScheme>())
    }

    /// After the scheme field changed: a scheme typed with arguments sets the scheme and its
    /// fields to what it says; a name picks the first scheme holding it.
    fn follow_query(&mut self) {
        match self.typed_scheme() {
            Some(Ok(scheme)) => {
                self.choose(scheme.name());
                for ((_, value), (_, text)) in self.args.iter_mut().zip(scheme.arguments()) {
                    match value {
                        ArgValue::Text(field) => *field = Field::new(&text),
                        ArgValue::Choice { options, index } => {
                            *index = options.iter().position(|o| *o == text).unwrap_or(0);
                        }
                    }
                }
            }
            // Not yet a valid scheme: the fields stay as they are, and submitting says why.
            Some(Err(_)) => {}
            None => {
                if let Some(&first) = self.candidates().first() {
                    self.choose(first);
                }
            }
        }
    }

    /// An argument edited below the scheme field: the arguments typed in the scheme field no
    /// longer say what will be applied, so only the name stays there.
    fn drop_typed_arguments(&mut self) {
        if let Some((name, _)) = self.query.value().split_once(':') {
            let name = name.to_owned();
            self.query.set(&name);
        }
    }

    /// The plan the dialog describes, or why it is not one: a typed scheme that does not parse,
    /// or a name no scheme holds, is refused rather than replaced by the scheme shown before.
    pub fn plan(&self) -> Result<InitPlan, AppError> {
        match self.typed_scheme() {
            Some(Err(e)) => return Err(e.into()),
            None if self.candidates().is_empty() => {
                return Err(AppError::NoScheme(self.query.value().to_owned()));
            }
            Some(Ok(_)) | None => {}
        }
        let mut scheme = InitScheme::with_defaults(self.scheme)?;
        for (key, value) in &self.args {
            scheme.set_argument(key, value.text())?;
        }
        let seed = self
            .seed
            .value()
            .parse()
            .map_err(|_| AppError::BadSeed(self.seed.value().to_owned()))?;
        let bias = match self.biases {
            Biases::Same => Some(scheme.clone()),
            Biases::Default => Some(InitScheme::Default),
            Biases::Keep => None,
        };
        if !self.weights && bias.is_none() {
            return Err(AppError::NoTarget);
        }
        Ok(InitPlan {
            weight: self.weights.then_some(scheme),
            bias,
            seed,
        })
    }

    /// What the status line and the undo record call this re-init.
    #[must_use]
    pub fn label(&self) -> String {
        let biases = match (self.weights, self.biases) {
            (true, Biases::Default) => " (biases: default)",
            _ => "",
        };
        format!("{} on {}{biases}", self.scheme, self.target())
    }
}

#[cfg(test)]
mod tests {
    use super::{ArgValue, Biases, InitDialog, InitField};
    use crate::app::field::Edit;

    fn typed(d: &mut InitDialog, text: &str) {
        for ch in text.chars() {
            d.edit(Edit::Insert(ch));
        }
    }

    #[test]
    fn typing_filters_the_schemes_and_arrows_cycle_the_matches() {
        let mut d = InitDialog::new("0".into(), false, true, true);
        typed(&mut d, "kaim");
        assert_eq!(d.candidates(), ["kaiming_uniform", "kaiming_normal"]);
        assert_eq!(d.scheme, "kaiming_uniform");
        d.cycle(true);
        assert_eq!(d.scheme, "kaiming_normal");
        d.cycle(true);
        assert_eq!(
            d.scheme, "kaiming_uniform",
            "cycling stays among the matches"
        );
        assert_eq!(d.biases, Biases::Default, "a 1-D bias has no fans");
        d.field = 2;
        assert_eq!(d.current(), InitField::Arg(1));
        assert_eq!(d.args[1].1.text(), "fan_in");
        d.cycle(true);
        assert_eq!(d.args[1].1.text(), "fan_out");
        d.field = 3;
        d.cycle(false);
        assert_eq!(d.args[2].1.text(), "relu", "the one before leaky_relu");
        let plan = d.plan().unwrap();
        assert_eq!(plan.bias.unwrap().name(), "default");
        assert_eq!(plan.weight.unwrap().name(), "kaiming_uniform");
    }

    #[test]
    fn a_scheme_typed_with_arguments_is_parsed_as_on_the_command_line() {
        let mut d = InitDialog::new("0".into(), false, true, true);
        typed(&mut d, "normal:std=0.02");
        assert_eq!(d.candidates().first(), Some(&"normal"));
        assert_eq!(d.scheme, "normal");
        assert_eq!(d.args[1].1.text(), "0.02", "the field shows the typed std");
        let plan = d.plan().unwrap();
        assert_eq!(plan.weight.unwrap().to_string(), "normal:mean=0.0,std=0.02");
        d.query.set("normal:sd=0.02");
        let err = d.plan().unwrap_err().to_string();
        assert!(err.contains("sd"), "{err}");
        d.query.set("gaussian");
        let err = d.plan().unwrap_err().to_string();
        assert!(err.contains("no scheme has \"gaussian\""), "{err}");
    }

    #[test]
    fn typing_in_a_number_field_replaces_its_default() {
        let mut d = InitDialog::new("0".into(), false, true, true);
        typed(&mut d, "normal");
        d.field = 2;
        typed(&mut d, "0.02");
        assert_eq!(d.args[1].1.text(), "0.02");
        let next = InitDialog::new("1".into(), true, true, true).remembering(&d);
        let mut next = next;
        next.field = 2;
        typed(&mut next, "0.5");
        assert_eq!(
            next.args[1].1.text(),
            "0.5",
            "a remembered value is a default too"
        );
    }

    #[test]
    fn a_plain_scheme_writes_biases_too_and_the_last_choice_is_remembered() {
        let mut d = InitDialog::new(String::new(), false, true, true);
        typed(&mut d, "const");
        assert_eq!((d.scheme, d.biases), ("constant", Biases::Same));
        d.field = 1;
        d.edit(Edit::DeleteToStart);
        typed(&mut d, "0.5");
        let next = InitDialog::new("1".into(), true, true, true).remembering(&d);
        assert_eq!(next.scheme, "constant");
        assert!(matches!(&next.args[0].1, ArgValue::Text(f) if f.value() == "0.5"));
        assert_eq!(next.path, "1");
    }
}
