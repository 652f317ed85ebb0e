//! Long-lived, logged-in sessions on one token, each owned by a worker thread.
//!
//! A PKCS#11 session serves one thread at a time, and PKCS#11 calls block. Each worker thread
//! owns one session for its whole life and takes calls from a shared queue; the async caller
//! awaits the answer. No thread hands a session to another and no call waits on the async
//! executor. A session that went stale (the token was removed, the login was lost) is replaced
//! by a fresh one and the call retried once.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use cryptoki::error::{Error, RvError};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use secrecy::SecretString;

use crate::fault::Fault;
use crate::module::Module;

/// A call for a worker: runs with the worker's session, or with the error that kept it from
/// having one.
type Job = Box<dyn FnOnce(&mut Worker) + Send>;

pub(crate) struct Pool {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    workers: Vec<std::thread::JoinHandle<()>>,
}

/// What each worker thread keeps: how to open a session, and its current one.
struct Worker {
    module: Arc<Module>,
    slot: Slot,
    pin: SecretString,
    session: Option<Session>,
}

impl Worker {
    fn session(&mut self) -> Result<&Session, Fault> {
        if self.session.is_none() {
            self.session = Some(
                open_session(&self.module, self.slot, &self.pin)
                    .map_err(Fault::call("opening a session"))?,
            );
        }
        Ok(self.session.as_ref().expect("just opened"))
    }

    fn discard_session(&mut self) {
        if let Some(session) = self.session.take() {
            self.module.close_session(session);
        }
    }

    /// Runs `op`; once more on a fresh session if the first one went stale.
    fn run<T>(
        &mut self,
        op: impl Fn(&Session) -> Result<T, Fault>,
        on_stale: impl FnOnce(),
    ) -> Result<T, Fault> {
        match op(self.session()?) {
            Err(fault) if fault.is_stale_session() => {
                tracing::warn!(
                    "PKCS#11 session went stale ({fault:?}); reopening and retrying once"
                );
                self.discard_session();
                on_stale();
                op(self.session()?)
            }
            result => result,
        }
    }
}

/// Opens a read-write session and logs in. Login state belongs to the application, not the
/// session: later sessions find it done.
fn open_session(module: &Module, slot: Slot, pin: &SecretString) -> Result<Session, Error> {
    let session = module.open_session(slot)?;
    match session.login(UserType::User, Some(pin)) {
        Ok(()) | Err(Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(session),
        Err(e) => {
            module.close_session(session);
            Err(e)
        }
    }
}

impl Pool {
    /// Opens the first session and logs in, so a wrong PIN fails here; starts `size` workers.
    pub(crate) fn open(
        module: Arc<Module>,
        slot: Slot,
        pin: SecretString,
        size: usize,
    ) -> Result<Pool, Error> {
        let mut first = Some(open_session(&module, slot, &pin)?);
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        let workers = (0..size.max(1))
            .map(|i| {
                let mut worker = Worker {
                    module: module.clone(),
                    slot,
                    pin: pin.clone(),
                    session: first.take(),
                };
                let receiver = receiver.clone();
                std::thread::Builder::new()
                    .name(format!("pkcs11-{i}"))
                    .spawn(move || loop {
                        let job = receiver.lock().expect("job queue poisoned").recv();
                        match job {
                            Ok(job) => job(&mut worker),
                            Err(_) => break worker.discard_session(), // the pool was dropped
                        }
                    })
                    .expect("a worker thread starts")
            })
            .collect();
        Ok(Pool {
            jobs: Mutex::new(Some(sender)),
            workers,
        })
    }

    /// Runs `op` on a worker's session and waits for it without blocking the executor;
    /// `on_stale` runs before the retry on a fresh session (to forget object handles).
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        op: impl Fn(&Session) -> Result<T, Fault> + Send + 'static,
        on_stale: impl FnOnce() + Send + 'static,
    ) -> Result<T, Fault> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |worker| {
            let _ = answer.send(worker.run(op, on_stale));
        });
        self.jobs
            .lock()
            .expect("job queue poisoned")
            .as_ref()
            .expect("the pool is open")
            .send(job)
            .map_err(|_| Fault::TaskFailed("the PKCS#11 workers have stopped".into()))?;
        answered
            .await
            .map_err(|_| Fault::TaskFailed("a PKCS#11 worker stopped mid-call".into()))?
    }
}

impl Drop for Pool {
    /// Stops the workers; each closes its session.
    fn drop(&mut self) {
        self.jobs.get_mut().expect("job queue poisoned").take();
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}
