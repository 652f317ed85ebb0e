//! A fixed-size pool of long-lived, logged-in sessions on one token.
//!
//! A PKCS#11 session serves one thread at a time, so each call checks a session out, uses it on
//! the calling (blocking) thread and checks it back in. A session that went stale (the token was
//! removed, the login was lost) is discarded and the call retried once on a fresh one.

use std::sync::{Arc, Condvar, Mutex};

use cryptoki::error::{Error, RvError};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use secrecy::SecretString;

use crate::fault::Fault;
use crate::module::Module;

pub(crate) struct Pool {
    module: Arc<Module>,
    slot: Slot,
    pin: SecretString,
    size: usize,
    state: Mutex<State>,
    returned: Condvar,
}

struct State {
    idle: Vec<Session>,
    /// Sessions open, idle or checked out.
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
        let pool = Pool {
            module,
            slot,
            pin,
            size: size.max(1),
            state: Mutex::new(State {
                idle: Vec::new(),
                open: 0,
            }),
            returned: Condvar::new(),
        };
        let first = pool.fresh_session()?;
        pool.check_in(first);
        pool.state.lock().expect("pool poisoned").open = 1;
        Ok(pool)
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

    fn fresh_session(&self) -> Result<Session, Error> {
        let session = self.module.open_session(self.slot)?;
        // Login state belongs to the application, not the session: later sessions find it done.
        match session.login(UserType::User, Some(&self.pin)) {
            Ok(()) | Err(Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(session),
            Err(e) => {
                self.module.close_session(session);
                Err(e)
            }
        }
    }

    fn check_out(&self) -> Result<Session, Fault> {
        let mut state = self.state.lock().expect("pool poisoned");
        loop {
            if let Some(session) = state.idle.pop() {
                return Ok(session);
            }
            if state.open < self.size {
                state.open += 1;
                drop(state);
                return self.fresh_session().map_err(|e| {
                    self.state.lock().expect("pool poisoned").open -= 1;
                    self.returned.notify_one();
                    Fault::call("opening a session")(e)
                });
            }
            state = self.returned.wait(state).expect("pool poisoned");
        }
    }

    fn check_in(&self, session: Session) {
        self.state.lock().expect("pool poisoned").idle.push(session);
        self.returned.notify_one();
    }

    fn discard(&self, session: Session) {
        self.module.close_session(session);
        self.state.lock().expect("pool poisoned").open -= 1;
        self.returned.notify_one();
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let idle = std::mem::take(&mut self.state.get_mut().expect("pool poisoned").idle);
        for session in idle {
            self.module.close_session(session);
        }
    }
}
