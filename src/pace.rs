//! Long work in paces: the engine and the model readers take a `pause` to
//! await between parts (a block, a layer, a piece of a table). The page
//! gives the thread back to the browser there; everywhere else the pause
//! returns at once and [`at_once`] takes the value without an executor.

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
