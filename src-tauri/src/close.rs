//! Closing the window while a model trains. The first close asks the page, which offers "Stop,
//! save and quit" or "Keep training". A second close while that question is still unanswered (the
//! page hung, or the user insists) stops the run, waits for its checkpoint and quits without the
//! page: the window can always be closed, and closing never loses the training done so far.

use std::sync::atomic::{AtomicBool, Ordering};

/// What a close request should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseAction {
    /// Nothing is training: close now.
    Close,
    /// Ask the page (it answers with `stop_and_quit` or `keep_training`).
    Ask,
    /// The page was asked and has not answered: stop, save and quit from here.
    StopAndQuit,
}

#[derive(Debug, Default)]
pub struct CloseGuard {
    asked: AtomicBool,
}

impl CloseGuard {
    /// Decides what a close request does; `training` is whether a training job is running.
    pub fn requested(&self, training: bool) -> CloseAction {
        if !training {
            self.asked.store(false, Ordering::SeqCst);
            return CloseAction::Close;
        }
        if self.asked.swap(true, Ordering::SeqCst) {
            CloseAction::StopAndQuit
        } else {
            CloseAction::Ask
        }
    }

    /// The page answered the question (either way): the next close asks again.
    pub fn answered(&self) {
        self.asked.store(false, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_close_without_an_answer_stops_and_quits() {
        let g = CloseGuard::default();
        assert_eq!(g.requested(false), CloseAction::Close);
        assert_eq!(g.requested(true), CloseAction::Ask);
        // The page never answered (hung): the second close does not depend on it.
        assert_eq!(g.requested(true), CloseAction::StopAndQuit);
    }

    #[test]
    fn keep_training_means_the_next_close_asks_again() {
        let g = CloseGuard::default();
        assert_eq!(g.requested(true), CloseAction::Ask);
        g.answered();
        assert_eq!(g.requested(true), CloseAction::Ask);
        // Training ended meanwhile: a close just closes, and a later run asks afresh.
        assert_eq!(g.requested(false), CloseAction::Close);
        assert_eq!(g.requested(true), CloseAction::Ask);
    }
}
