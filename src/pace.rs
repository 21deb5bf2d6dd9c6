//! Long work in paces: the engine and the model readers take a `pause` to
//! await between parts (a block, a layer, a piece of a table). The page
//! gives the thread back to the browser there; everywhere else the pause
//! returns at once and [`at_once`] takes the value without an executor.
//! A pause that answers [`ControlFlow`] may also stop the work (the page
//! no longer wants its result); [`go_on`] never does.

use std::ops::ControlFlow;

/// The pause of a stoppable computation run to its end: returns at once, never stops.
pub async fn go_on() -> ControlFlow<()> {
    ControlFlow::Continue(())
}

/// A pause with its closure's type erased. A loader generic over its
/// caller's pause is compiled once per caller (each copy of the GGUF and
/// safetensors loaders is ~15 kB of wasm); behind `&mut dyn Pause` it is
/// compiled once.
pub trait Pause {
    /// The pause's future, boxed.
    fn pause(&mut self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + '_>>;
}

impl<F: AsyncFnMut()> Pause for F {
    fn pause(&mut self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + '_>> {
        Box::pin(self())
    }
}

/// The value of a future that never waits (a paced computation whose pause
/// returns at once), without an executor.
pub fn at_once<T>(future: impl std::future::Future<Output = T>) -> T {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(value) = future.as_mut().poll(&mut cx) {
            return value;
        }
    }
}
