//! Colours that degrade with the terminal: truecolor where it says so, 256 or 16 colours otherwise,
//! none with `NO_COLOR` or on a vt100. Every style that carries meaning also has a non-colour form (bold,
//! underline, reverse), and the screen adds a marker wherever colour would otherwise be alone.

use ratatui::style::{Color, Modifier, Style};

/// How many colours the terminal shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorLevel {
    /// No colour at all (`NO_COLOR`, `TERM=dumb`): attributes only.
    None,
    /// The 16 ANSI colours.
    Ansi16,
    /// The xterm 256-colour palette.
    Ansi256,
    /// 24-bit colour.
    TrueColor,
}

/// What a piece of the screen means; the theme gives each a style.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Plain text.
    Text,
    /// Secondary text: counts, shapes, labels.
    Dim,
    /// The title bar.
    Title,
    /// A pane's border when it has the focus.
    Focused,
    /// The selected row or cell.
    Selected,
    /// Another path to the selected tensor.
    Alias,
    /// A key name in hints and help.
    Key,
    /// A heading in a pane or dialog.
    Heading,
    /// Histogram bars and progress.
    Bar,
    /// NaN, Inf, errors.
    Bad,
    /// Good news in the status bar.
    Good,
}

/// The colours for one terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    /// What the terminal can show.
    pub level: ColorLevel,
}

impl Theme {
    /// Reads `NO_COLOR`, `COLORTERM` and `TERM` as terminals and SSH pass them on.
    #[must_use]
    pub fn detect() -> Theme {
        let var = |name| std::env::var(name).unwrap_or_default();
        Theme::from_env(&var("NO_COLOR"), &var("COLORTERM"), &var("TERM"))
    }

    /// The level for these variables. `TERM` has the last word over `COLORTERM`, which SSH passes
    /// on from the user's desktop even into a console that cannot show it: a vt100 has no colour,
    /// the Linux console 16.
    #[must_use]
    pub fn from_env(no_color: &str, colorterm: &str, term: &str) -> Theme {
        let level = if !no_color.is_empty() || term == "dumb" || term.starts_with("vt") {
            ColorLevel::None
        } else if term == "linux" || term.starts_with("ansi") || term.starts_with("cons") {
            ColorLevel::Ansi16
        } else if matches!(colorterm, "truecolor" | "24bit") || term.contains("direct") {
            ColorLevel::TrueColor
        } else if term.contains("256") {
            ColorLevel::Ansi256
        } else {
            ColorLevel::Ansi16
        };
        Theme { level }
    }

    /// `(r, g, b)` at this level, or `basic` on a 16-colour terminal; `None` without colour.
    fn color(self, (r, g, b): (u8, u8, u8), basic: Color) -> Option<Color> {
        match self.level {
            ColorLevel::None => None,
            ColorLevel::Ansi16 => Some(basic),
            ColorLevel::Ansi256 => {
                let step = |v: u8| (u16::from(v) * 5 + 127) / 255;
                Some(Color::Indexed(
                    (16 + 36 * step(r) + 6 * step(g) + step(b)) as u8,
                ))
            }
            ColorLevel::TrueColor => Some(Color::Rgb(r, g, b)),
        }
    }

    fn fg(self, rgb: (u8, u8, u8), basic: Color) -> Style {
        self.color(rgb, basic)
            .map_or(Style::new(), |c| Style::new().fg(c))
    }

    /// The style of a role.
    #[must_use]
    pub fn style(self, role: Role) -> Style {
        match role {
            Role::Text => Style::new(),
            Role::Dim => self.fg((140, 140, 150), Color::DarkGray),
            Role::Title | Role::Focused => self
                .fg((120, 200, 255), Color::Cyan)
                .add_modifier(Modifier::BOLD),
            Role::Selected => Style::new().add_modifier(Modifier::REVERSED),
            Role::Alias => self
                .fg((255, 120, 220), Color::Magenta)
                .add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
            Role::Key => self
                .fg((255, 210, 110), Color::Yellow)
                .add_modifier(Modifier::BOLD),
            Role::Heading => Style::new().add_modifier(Modifier::BOLD),
            Role::Bar => self.fg((110, 190, 255), Color::Blue),
            Role::Bad => self
                .fg((255, 100, 90), Color::Red)
                .add_modifier(Modifier::BOLD),
            Role::Good => self.fg((130, 220, 130), Color::Green),
        }
    }

    /// The heatmap colour of `t` in [-1, 1]: blue below zero, dark at zero, red above, so that a
    /// dead row is a black stripe. `None` without colour (the heatmap then shades by magnitude).
    #[must_use]
    pub fn heat(self, t: f64) -> Option<Color> {
        let t = if t.is_nan() { 0.0 } else { t.clamp(-1.0, 1.0) };
        let (dark, blue, red) = (
            (24.0, 24.0, 28.0),
            (70.0, 130.0, 255.0),
            (255.0, 80.0, 50.0),
        );
        let end = if t < 0.0 { blue } else { red };
        let k = t.abs().sqrt();
        let mix = |a: f64, b: f64| (a + (b - a) * k).round() as u8;
        let basic = match t {
            t if t < -0.5 => Color::Blue,
            t if t < -0.1 => Color::Cyan,
            t if t <= 0.1 => Color::Black,
            t if t <= 0.5 => Color::Yellow,
            _ => Color::Red,
        };
        self.color(
            (mix(dark.0, end.0), mix(dark.1, end.1), mix(dark.2, end.2)),
            basic,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::{ColorLevel, Theme};

    #[test]
    fn term_caps_what_colorterm_claims() {
        let level = |n, c, t| Theme::from_env(n, c, t).level;
        assert_eq!(
            level("", "truecolor", "xterm-256color"),
            ColorLevel::TrueColor
        );
        assert_eq!(level("", "truecolor", "vt100"), ColorLevel::None);
        assert_eq!(level("", "truecolor", "linux"), ColorLevel::Ansi16);
        assert_eq!(level("", "", "screen-256color"), ColorLevel::Ansi256);
        assert_eq!(level("", "", "xterm"), ColorLevel::Ansi16);
        assert_eq!(level("1", "truecolor", "xterm-256color"), ColorLevel::None);
    }
}
