//! A fixed-size pool of long-lived, logged-in sessions on one token.
//!
//! A PKCS#11 session serves one thread at a time, so each call checks a session out, uses it on
//! the calling (blocking) thread and checks it back in. A session that went stale (the token was
//! removed, the login was lost) is discarded and the call retried once on a fresh one.
//!
//! [`Pool::close`] waits for the calls in flight, closes every session and lets go of the module
//! (the last pool to do so finalizes it); every call after that fails without entering the
//! library.

use std::sync::{Arc, Condvar, Mutex};

use cryptoki::error::{Error, RvError};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use secrecy::SecretString;

use crate::fault::Fault;
use crate::module::Module;

pub(crate) struct Pool {
    slot: Slot,
    pin: SecretString,
    size: usize,
    state: Mutex<State>,
    /// Signalled whenever a session comes back or a slot for one frees up.
    returned: Condvar,
}

struct State {
    /// `None` once the pool is closed.
    module: Option<Arc<Module>>,
    /// Set by [`Pool::close`]: no session is handed out any more.
    closing: bool,
    idle: Vec<Session>,
    /// Sessions open or being opened, idle or checked out.
    open: usize,
}

impl Pool {
    /// Opens one session and logs in, so a wrong PIN fails here; the rest open on demand.
    pub(crate) fn open(
        module: Arc<Module>,
        slot: Slot,
        pin: SecretString,
        size: usize,
    ) -> Result<Pool, Error> {
        let first = fresh_session(&module, slot, &pin)?;
        Ok(Pool {
            slot,
            pin,
            size: size.max(1),
            state: Mutex::new(State {
                module: Some(module),
                closing: false,
                idle: vec![first],
                open: 1,
            }),
            returned: Condvar::new(),
        })
    }

    /// Runs `op` on a session; retries once on a fresh session when the first one went stale.
    /// `on_stale` runs before the retry (to forget object handles that may have changed).
    pub(crate) fn run<T>(
        &self,
        op: impl Fn(&Session) -> Result<T, Fault>,
        on_stale: impl FnOnce(),
    ) -> Result<T, Fault> {
        let session = self.check_out()?;
        match op(&session) {
            Err(fault) if fault.is_stale_session() => {
                tracing::warn!(
                    "PKCS#11 session went stale ({fault:?}); reopening and retrying once"
                );
                self.discard(session);
                on_stale();
                let session = self.check_out()?;
                let result = op(&session);
                self.check_in(session);
                result
            }
            result => {
                self.check_in(session);
                result
            }
        }
    }

    /// Waits for the sessions checked out to come back, closes them all and lets go of the
    /// module. Idempotent.
    pub(crate) fn close(&self) {
        let mut state = self.state.lock().expect("pool poisoned");
        state.closing = true;
        // Callers waiting for a session give up now.
        self.returned.notify_all();
        while state.idle.len() < state.open {
            state = self.returned.wait(state).expect("pool poisoned");
        }
        let idle = std::mem::take(&mut state.idle);
        state.open = 0;
        let module = state.module.take();
        drop(state);
        if let Some(module) = module {
            for session in idle {
                module.close_session(session);
            }
        }
    }

    fn check_out(&self) -> Result<Session, Fault> {
        let mut state = self.state.lock().expect("pool poisoned");
        loop {
            if state.closing {
                return Err(Fault::Closed);
            }
            if let Some(session) = state.idle.pop() {
                return Ok(session);
            }
            if state.open < self.size {
                // Held until `closing` is set and every session is back: present here.
                let module = state.module.clone().ok_or(Fault::Closed)?;
                state.open += 1;
                drop(state);
                return fresh_session(&module, self.slot, &self.pin).map_err(|e| {
                    self.forget_one();
                    Fault::call("opening a session")(e)
                });
            }
            state = self.returned.wait(state).expect("pool poisoned");
        }
    }

    fn check_in(&self, session: Session) {
        self.state.lock().expect("pool poisoned").idle.push(session);
        self.returned.notify_all();
    }

    /// Closes a session that went stale. The module is still held: [`Pool::close`] waits for
    /// every checked-out session before it lets go.
    fn discard(&self, session: Session) {
        let module = self.state.lock().expect("pool poisoned").module.clone();
        if let Some(module) = module {
            module.close_session(session);
        }
        self.forget_one();
    }

    fn forget_one(&self) {
        self.state.lock().expect("pool poisoned").open -= 1;
        self.returned.notify_all();
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.close();
    }
}

fn fresh_session(module: &Module, slot: Slot, pin: &SecretString) -> Result<Session, Error> {
    let session = module.open_session(slot)?;
    // Login state belongs to the application, not the session: later sessions find it done.
    match session.login(UserType::User, Some(pin)) {
        Ok(()) | Err(Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(session),
        Err(e) => {
            module.close_session(session);
            Err(e)
        }
    }
}
