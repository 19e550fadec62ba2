//! Every user intent the app understands, free of terminal types so that tests can send them.

use super::field::Edit;

/// One thing the user asked for. The keymap turns keys into these; `update` carries them out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Leave the app (asks first when re-inits are not written).
    Quit,
    /// Leave at once, whatever is unsaved (Ctrl-C).
    ForceQuit,
    /// Show or hide the help screen.
    ToggleHelp,
    /// Move the focus to the other pane.
    FocusNext,
    /// Move up: the tree selection, the values cursor, or a dialog field.
    Up,
    /// Move down.
    Down,
    /// Move left: collapse a module, the values cursor, or the previous choice in a dialog.
    Left,
    /// Move right: expand a module, the values cursor, or the next choice in a dialog.
    Right,
    /// One page up.
    PageUp,
    /// One page down.
    PageDown,
    /// To the first row.
    Home,
    /// To the last row.
    End,
    /// Expand or collapse the selected module.
    Toggle,
    /// Start typing a filter on parameter and module names.
    StartFilter,
    /// Select the next path that refers to the same tensor as the selection.
    NextAlias,
    /// Cycle the tensor view: values, histogram, heatmap.
    CycleView,
    /// Show the previous slice of an N-D tensor (its leading index).
    PrevSlice,
    /// Show the next slice of an N-D tensor.
    NextSlice,
    /// With a followed run, show the previous checkpoint's version of the tensor; else the
    /// previous slice.
    EarlierCheckpoint,
    /// With a followed run, show the next checkpoint's version of the tensor; else the next slice.
    LaterCheckpoint,
    /// Run a forward pass and show its panel, or hide the panel.
    Forward,
    /// Grow the random batch of the forward pass.
    BatchUp,
    /// Shrink the random batch.
    BatchDown,
    /// Use the next seed for the random batch.
    SeedUp,
    /// Use the previous seed.
    SeedDown,
    /// Open the re-initialize dialog for the selected subtree.
    OpenInit,
    /// Set the element under the values cursor to 0, as an undoable edit.
    ZeroCell,
    /// Undo the last re-initialization.
    Undo,
    /// Open the prompt to write the model to a file.
    OpenWrite,
    /// Open the list of models to switch to.
    OpenModels,
    /// Open the list of models to compare with.
    OpenCompare,
    /// Show A, B or Δ = B − A of a compared tensor.
    CycleSide,
    /// Show a quantized weight's dequantized values, its stored codes or its scales.
    CyclePart,
    /// In the filter: keep only the tensors a comparison found changed, or all again.
    ToggleChanged,
    /// Edit the text a family checkpoint runs on.
    EditText,
    /// Show the block table, the logit lens, the attention map or the outliers of a family run.
    CycleProbe,
    /// Select the super weight the outliers view points at, its cell under the values cursor.
    JumpToSuperWeight,
    /// Show the attention of the layer this many after (or before) the one shown.
    ProbeLayer(i8),
    /// Show the attention head this many after (or before) the one shown.
    ProbeHead(i8),
    /// Type a character into the field being edited.
    Type(char),
    /// Edit the field being typed in: delete, move the cursor (Backspace, Ctrl-W, Ctrl-U, Home…).
    Edit(Edit),
    /// Complete the typed path (Tab in the model picker).
    Complete,
    /// Switch the histogram between counts and log counts.
    ToggleLog,
    /// Switch the heatmap's scale between the 99th percentile of |x| and ±absmax.
    ToggleHeatScale,
    /// Confirm the dialog or field (Enter).
    Submit,
    /// Close the dialog or field without acting (Esc).
    Cancel,
    /// Answer yes to a question.
    Yes,
    /// Answer no to a question.
    No,
    /// The terminal now has this many columns and rows.
    Resize(u16, u16),
    /// The mouse wheel turned up over the cell at (column, row).
    ScrollUp(u16, u16),
    /// The mouse wheel turned down over the cell at (column, row).
    ScrollDown(u16, u16),
    /// A mouse click at (column, row).
    Click(u16, u16),
}

impl Action {
    /// The edit a typing action makes to a text field, if it is one.
    #[must_use]
    pub fn edit(self) -> Option<Edit> {
        match self {
            Action::Type(ch) => Some(Edit::Insert(ch)),
            Action::Edit(edit) => Some(edit),
            _ => None,
        }
    }
}
