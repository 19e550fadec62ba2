//! A cursor in a list with the window on screen around it: the one scrolling rule shared by the
//! tree, the values grid, the module table and the forward panel.

/// A cursor over `len` items and the first item on screen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scroll {
    /// The item with the cursor.
    pub cursor: usize,
    /// The first item on screen.
    pub offset: usize,
}

/// How far a move goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// This many items (negative: up).
    By(isize),
    /// This many pages.
    Pages(isize),
    /// To the first item.
    First,
    /// To the last item.
    Last,
}

impl Scroll {
    /// Moves the cursor within `0..len`, keeping it on a page of `page` items; whether anything
    /// changed.
    pub fn step(&mut self, step: Step, len: usize, page: usize) -> bool {
        let before = *self;
        let page = page.max(1);
        let last = len.saturating_sub(1);
        self.cursor = match step {
            Step::By(n) => self.cursor.saturating_add_signed(n),
            Step::Pages(n) => self.cursor.saturating_add_signed(n * page as isize),
            Step::First => 0,
            Step::Last => last,
        }
        .min(last);
        self.follow(page);
        *self != before
    }

    /// Moves the window only (no cursor: the forward panel), no further than its last page.
    pub fn scroll(&mut self, step: Step, len: usize, page: usize) -> bool {
        let before = self.offset;
        let page = page.max(1);
        let max = len.saturating_sub(page);
        self.offset = match step {
            Step::By(n) => self.offset.saturating_add_signed(n),
            Step::Pages(n) => self.offset.saturating_add_signed(n * page as isize),
            Step::First => 0,
            Step::Last => max,
        }
        .min(max);
        self.cursor = self.offset;
        self.offset != before
    }

    /// Keeps the window within a list of `len` after the page or the list changed.
    pub fn clamp_window(&mut self, len: usize, page: usize) {
        self.offset = self.offset.min(len.saturating_sub(page.max(1)));
        self.cursor = self.offset;
    }

    /// Moves the window so that the cursor is on a page of `page` items: only when it would leave.
    pub fn follow(&mut self, page: usize) {
        self.offset = follow(self.offset, self.cursor, page);
    }
}

/// The first row (or column) to show so that `cursor` stays on a page of `page` rows starting
/// near `offset`: the view moves only when the cursor would leave it.
#[must_use]
pub fn follow(offset: usize, cursor: usize, page: usize) -> usize {
    let page = page.max(1);
    if cursor < offset {
        cursor
    } else if cursor >= offset + page {
        cursor + 1 - page
    } else {
        offset
    }
}

#[cfg(test)]
mod tests {
    use super::{Scroll, Step};

    #[test]
    fn the_window_follows_the_cursor_only_when_it_leaves() {
        let mut s = Scroll::default();
        assert!(!s.step(Step::By(-1), 10, 4), "already at the top");
        assert!(s.step(Step::By(3), 10, 4));
        assert_eq!((s.cursor, s.offset), (3, 0));
        assert!(s.step(Step::By(1), 10, 4));
        assert_eq!((s.cursor, s.offset), (4, 1));
        assert!(s.step(Step::Last, 10, 4));
        assert_eq!((s.cursor, s.offset), (9, 6));
        assert!(s.step(Step::Pages(-1), 10, 4));
        assert_eq!((s.cursor, s.offset), (5, 5));
        assert!(!s.step(Step::By(0), 10, 4));
    }

    #[test]
    fn a_window_without_cursor_stops_at_its_last_page() {
        let mut s = Scroll::default();
        assert!(s.scroll(Step::Last, 10, 4));
        assert_eq!(s.offset, 6);
        assert!(!s.scroll(Step::By(1), 10, 4));
        assert!(s.scroll(Step::By(-1), 10, 4));
        s.clamp_window(3, 4);
        assert_eq!(s.offset, 0);
    }
}
