//! Closing the window while a model trains. The first close asks the page, which offers "Stop,
//! save and quit" or "Keep training". A second close while that question is still unanswered (the
//! page hung, or the user insists) stops the run, waits for its checkpoint and quits without the
//! page: the window can always be closed, and closing never loses the training done so far. Once
//! quitting has begun, further closes wait for it instead of starting it again.

use std::sync::atomic::{AtomicU8, Ordering};

/// What a close request should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseAction {
    /// Nothing is training: close now.
    Close,
    /// Ask the page (it answers with `stop_and_quit` or `keep_training`).
    Ask,
    /// The page was asked and has not answered: stop, save and quit from here.
    StopAndQuit,
    /// Quitting is under way (the checkpoint is being written): keep the window until it is done.
    Wait,
}

const IDLE: u8 = 0;
const ASKED: u8 = 1;
const QUITTING: u8 = 2;

#[derive(Debug, Default)]
pub struct CloseGuard {
    state: AtomicU8,
}

impl CloseGuard {
    /// Decides what a close request does; `training` is whether a training job is running.
    pub fn requested(&self, training: bool) -> CloseAction {
        if !training {
            // Nothing left to save (also after quitting began, should its exit never come: the
            // window must still close).
            self.state.store(IDLE, Ordering::SeqCst);
            return CloseAction::Close;
        }
        if self.state.load(Ordering::SeqCst) == QUITTING {
            return CloseAction::Wait;
        }
        match self
            .state
            .compare_exchange(IDLE, ASKED, Ordering::SeqCst, Ordering::SeqCst)
        {
            Ok(_) => CloseAction::Ask,
            Err(_) => {
                self.state.store(QUITTING, Ordering::SeqCst);
                CloseAction::StopAndQuit
            }
        }
    }

    /// The page answered "Keep training", or a new page replaced the one that was asked: the
    /// next close asks again (unless quitting has already begun).
    pub fn answered(&self) {
        let _ = self
            .state
            .compare_exchange(ASKED, IDLE, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// The page answered "Stop, save and quit": from now on closes wait for it.
    pub fn quitting(&self) {
        self.state.store(QUITTING, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_close_without_an_answer_stops_and_quits_once() {
        let g = CloseGuard::default();
        assert_eq!(g.requested(false), CloseAction::Close);
        assert_eq!(g.requested(true), CloseAction::Ask);
        // The page never answered (hung): the second close does not depend on it.
        assert_eq!(g.requested(true), CloseAction::StopAndQuit);
        // A third close while the checkpoint is written must not quit before it is done.
        assert_eq!(g.requested(true), CloseAction::Wait);
        g.answered();
        assert_eq!(g.requested(true), CloseAction::Wait);
        // The run has stopped and saved: a close now closes, whatever happened to the quit.
        assert_eq!(g.requested(false), CloseAction::Close);
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

    #[test]
    fn after_stop_save_and_quit_every_close_waits() {
        let g = CloseGuard::default();
        assert_eq!(g.requested(true), CloseAction::Ask);
        g.quitting();
        assert_eq!(g.requested(true), CloseAction::Wait);
    }
}
