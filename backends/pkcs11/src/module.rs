//! The PKCS#11 library, initialised once per process and module path while a provider uses it.
//!
//! `C_Initialize` and `C_Finalize` act on the whole process, and SoftHSM is known to crash when
//! sessions are opened and closed concurrently: every provider in the process shares one
//! [`Module`] per library path, and opens and closes its sessions under the module's lock.
//!
//! Only session pools hold a [`Module`], and only while they have sessions open. When the last
//! one lets go, the module is finalized (`C_Finalize`, exactly once per `C_Initialize`): after
//! every session has closed and while no thread is inside the library. A process that closes its
//! providers before it exits therefore leaves nothing for the library's own teardown at exit,
//! which in SoftHSM2 crashes when a session is still open or a thread is still inside it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error, RvError};
use cryptoki::session::Session;
use cryptoki::slot::Slot;

/// The modules in use, by path. An entry whose module is gone is being finalized.
static LOADED: Mutex<BTreeMap<PathBuf, Weak<Module>>> = Mutex::new(BTreeMap::new());
/// Signalled when a module has been finalized and its entry removed.
static FINALIZED: Condvar = Condvar::new();

fn loaded() -> MutexGuard<'static, BTreeMap<PathBuf, Weak<Module>>> {
    // The map stays consistent whatever panicked while holding the lock.
    LOADED.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) struct Module {
    pub(crate) context: Pkcs11,
    path: PathBuf,
    /// False when someone else in the process had initialised the library: theirs to finalize.
    initialized_here: bool,
    session_churn: Mutex<()>,
}

impl Module {
    /// The process's module for `path`, loading and initialising the library if no provider
    /// uses it now.
    pub(crate) fn load(path: &Path) -> Result<Arc<Module>, Error> {
        let mut loaded = loaded();
        while let Some(entry) = loaded.get(path) {
            match entry.upgrade() {
                Some(module) => return Ok(module),
                // The last user let go and the finalization is under way: initialising now
                // would be undone by it, so wait until it is done.
                None => {
                    loaded = FINALIZED
                        .wait(loaded)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            }
        }
        let context = Pkcs11::new(path)?;
        let initialized_here =
            match context.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
                Ok(()) => true,
                Err(Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => false,
                Err(e) => return Err(e),
            };
        let module = Arc::new(Module {
            context,
            path: path.to_owned(),
            initialized_here,
            session_churn: Mutex::new(()),
        });
        loaded.insert(path.to_owned(), Arc::downgrade(&module));
        Ok(module)
    }

    pub(crate) fn open_session(&self, slot: Slot) -> Result<Session, Error> {
        let _churn = self.session_churn.lock().expect("session lock poisoned");
        self.context.open_rw_session(slot)
    }

    pub(crate) fn close_session(&self, session: Session) {
        let _churn = self.session_churn.lock().expect("session lock poisoned");
        if let Err(e) = session.close() {
            tracing::debug!("closing a PKCS#11 session: {}", crate::fault::describe(&e));
        }
    }
}

impl Drop for Module {
    /// Finalizes under the registry's lock, so that a provider opening the same library waits
    /// for it instead of initialising a library about to be finalized.
    fn drop(&mut self) {
        let mut loaded = loaded();
        if self.initialized_here {
            if let Err(e) = self.context.clone().finalize() {
                tracing::warn!(
                    "finalizing the PKCS#11 module: {}",
                    crate::fault::describe(&e)
                );
            }
        }
        loaded.remove(&self.path);
        FINALIZED.notify_all();
    }
}
