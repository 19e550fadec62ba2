//! The key table (issue 19): every binding gives its action in some mode, and every action a key
//! can give has a binding. (That no key is bound twice in one context, and that every binding is
//! on the help screen, is tested beside the table.)

mod app_support;

use app_support::{Harness, demo};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use paramscope::app::action::Action;
use paramscope::app::field::{Edit, Field};
use paramscope::app::init_dialog::InitDialog;
use paramscope::app::keymap::{KEYMAP, Key, action_for, label};
use paramscope::app::picker::Picker;
use paramscope::app::state::{Mode, Popup, Question};

/// Whether a key gives `action` (else a mouse or resize event does): a new variant does not
/// compile here until it is sorted, and then belongs in the list of the test below.
fn from_keys(action: Action) -> bool {
    match action {
        Action::Quit
        | Action::ForceQuit
        | Action::ToggleHelp
        | Action::FocusNext
        | Action::Up
        | Action::Down
        | Action::Left
        | Action::Right
        | Action::PageUp
        | Action::PageDown
        | Action::Home
        | Action::End
        | Action::Toggle
        | Action::StartFilter
        | Action::NextAlias
        | Action::CycleView
        | Action::PrevSlice
        | Action::NextSlice
        | Action::EarlierCheckpoint
        | Action::LaterCheckpoint
        | Action::Forward
        | Action::BatchUp
        | Action::BatchDown
        | Action::SeedUp
        | Action::SeedDown
        | Action::OpenInit
        | Action::ZeroCell
        | Action::Undo
        | Action::OpenWrite
        | Action::OpenModels
        | Action::OpenCompare
        | Action::CycleSide
        | Action::CyclePart
        | Action::ToggleChanged
        | Action::EditText
        | Action::CycleProbe
        | Action::JumpToSuperWeight
        | Action::ProbeLayer(_)
        | Action::ProbeHead(_)
        | Action::Type(_)
        | Action::Edit(_)
        | Action::Complete
        | Action::ToggleLog
        | Action::ToggleHeatScale
        | Action::Submit
        | Action::Cancel
        | Action::Yes
        | Action::No => true,
        // Terminal events other than keys.
        Action::Resize(..) | Action::ScrollUp(..) | Action::ScrollDown(..) | Action::Click(..) => {
            false
        }
    }
}

/// The app in each mode the keyboard can be in, and with the forward panel open.
fn every_mode() -> Vec<Harness> {
    let modes = [
        Mode::Browse,
        Mode::Filter(Field::new("")),
        Mode::Init(InitDialog::new(String::new(), false, true, true)),
        Mode::Write(Field::new("")),
        Mode::Text(Field::new("")),
        Mode::Ask(Question::QuitUnsaved),
        Mode::Open(Picker::new(vec!["demo:mlp".into()], "")),
        Mode::Help(0),
        Mode::Popup(Popup {
            error: false,
            text: String::new(),
            offset: 0,
        }),
    ];
    let mut apps: Vec<Harness> = modes
        .into_iter()
        .map(|mode| {
            let mut app = demo("mlp");
            app.mode = mode;
            app
        })
        .collect();
    let mut forward = demo("mlp");
    forward.forward.open = true;
    apps.push(forward);
    apps
}

#[test]
fn every_binding_gives_its_action_in_some_mode_and_every_action_has_a_key() {
    let apps = every_mode();
    for b in KEYMAP {
        for key in b.keys {
            let (event, want) = match key {
                Key::Code(code, mods) => (KeyEvent::new(*code, *mods), b.action),
                // A character no context binds.
                Key::AnyChar => (
                    KeyEvent::new(KeyCode::Char('x'), KeyModifiers::NONE),
                    Action::Type('x'),
                ),
            };
            assert!(
                apps.iter().any(|app| action_for(app, event) == Some(want)),
                "{:?} in {:?} is shadowed everywhere",
                label(*key),
                b.context
            );
        }
    }
    let bound: Vec<Action> = KEYMAP.iter().map(|b| b.action).collect();
    let edits = [
        Edit::DeleteBack,
        Edit::DeleteForward,
        Edit::DeleteWord,
        Edit::DeleteToStart,
        Edit::Left,
        Edit::Right,
        Edit::Start,
        Edit::End,
    ];
    let every = [
        Action::Quit,
        Action::ForceQuit,
        Action::ToggleHelp,
        Action::FocusNext,
        Action::Up,
        Action::Down,
        Action::Left,
        Action::Right,
        Action::PageUp,
        Action::PageDown,
        Action::Home,
        Action::End,
        Action::Toggle,
        Action::StartFilter,
        Action::NextAlias,
        Action::CycleView,
        Action::PrevSlice,
        Action::NextSlice,
        Action::EarlierCheckpoint,
        Action::LaterCheckpoint,
        Action::Forward,
        Action::BatchUp,
        Action::BatchDown,
        Action::SeedUp,
        Action::SeedDown,
        Action::OpenInit,
        Action::ZeroCell,
        Action::Undo,
        Action::OpenWrite,
        Action::OpenModels,
        Action::OpenCompare,
        Action::CycleSide,
        Action::CyclePart,
        Action::ToggleChanged,
        Action::CycleProbe,
        Action::JumpToSuperWeight,
        Action::ProbeLayer(1),
        Action::ProbeLayer(-1),
        Action::ProbeHead(1),
        Action::ProbeHead(-1),
        Action::EditText,
        Action::Type(' '),
        Action::Complete,
        Action::ToggleLog,
        Action::ToggleHeatScale,
        Action::Submit,
        Action::Cancel,
        Action::Yes,
        Action::No,
    ]
    .into_iter()
    .chain(edits.map(Action::Edit));
    for action in every {
        assert!(from_keys(action));
        assert!(bound.contains(&action), "no key gives {action:?}");
    }
}
