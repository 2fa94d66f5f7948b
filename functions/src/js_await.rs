//! Awaiting a JavaScript promise: [`settled`], the Worker's replacement for
//! `wasm_bindgen_futures::JsFuture` on its request path.
//!
//! Why: `JsFuture::from(promise)` makes two wasm-bindgen `Closure`s per
//! await, each a JavaScript function around a boxed Rust closure, registered
//! with a `FinalizationRegistry` and dropped again through a call into wasm;
//! a V8 profile of `POST /v1/usage` in workerd put that promise bridging at
//! about 12 % of the isolate's samples. Here an await is one call into
//! JavaScript (`js/await.js`), whose two plain reactions call the one wasm
//! export [`settle_await`] with the slot the future waits on; the outcome
//! waits in a slab ([`Slab`]) until the future polls it. Waking still goes
//! through `wasm_bindgen_futures`' executor, which runs the entry points.
//! bench/README.md (figure 7) has the measurement.
//!
//! A slot is handed out with a key, and an outcome is taken only for the
//! key its slot holds: a promise made by an earlier wasm instance (before
//! `entry.js` replaced a trapped one) may settle into this instance's slab,
//! and its slot number alone could name a slot now in use.
//!
//! A future dropped before its promise settles leaves its slot behind,
//! marked abandoned, and the settling frees it; a promise that never settles
//! keeps its slot for the isolate's life (as `JsFuture`'s closures would
//! stay alive), which none of ours do: each has a timeout or is the
//! runtime's own call.

use js_sys::{Function, Promise};
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};
use wasm_bindgen::prelude::*;

#[wasm_bindgen(module = "/js/await.js")]
extern "C" {
    /// Calls [`settle_await`] with `index`, `key` and the outcome once
    /// `promise` settles.
    #[wasm_bindgen(js_name = awaitSlot)]
    fn await_slot(promise: &Promise, index: u32, key: u32);
}

type Outcome = Result<JsValue, JsValue>;

thread_local! {
    static SLAB: RefCell<Slab<Outcome>> = RefCell::new(Slab::new(first_key()));
}

/// Keys start at a random point per wasm instance, so that a slot number
/// and key from an instance that trapped is unlikely (1 in 2^32) to match
/// a live slot of the one that replaced it.
fn first_key() -> u32 {
    (js_sys::Math::random() * f64::from(u32::MAX)) as u32
}

/// The promise's outcome: `Ok` with its value, `Err` with its rejection.
pub fn settled(promise: &Promise) -> Settling {
    let ticket = SLAB.with(|slab| slab.borrow_mut().open());
    await_slot(promise, ticket.index, ticket.key);
    Settling {
        ticket,
        done: false,
    }
}

/// Called by `js/await.js` when a promise settles: stores its outcome and
/// wakes the future waiting on it. An outcome for a slot that does not
/// hold `key` (a stale instance's) is dropped.
#[wasm_bindgen(js_name = settleAwait)]
pub fn settle_await(index: u32, key: u32, ok: bool, value: JsValue) {
    let outcome = if ok { Ok(value) } else { Err(value) };
    // Woken after the slab is released: a waker may run code that awaits.
    let waker = SLAB.with(|slab| slab.borrow_mut().settle(index, key, outcome));
    if let Some(waker) = waker {
        waker.wake();
    }
}

/// The future [`settled`] returns.
pub struct Settling {
    ticket: Ticket,
    done: bool,
}

impl Future for Settling {
    type Output = Outcome;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        let polled = SLAB.with(|slab| slab.borrow_mut().poll(self.ticket, cx.waker()));
        if polled.is_ready() {
            self.done = true;
        }
        polled
    }
}

impl Drop for Settling {
    fn drop(&mut self) {
        if !self.done {
            // `try_with`: during the thread's teardown the slab may be gone.
            let _ = SLAB.try_with(|slab| slab.borrow_mut().abandon(self.ticket));
        }
    }
}

/// Runs `future` as the answer to a JavaScript call: the promise returned
/// settles with its outcome. The future is polled at once, and again each
/// time it is woken, right there: a promise settling calls
/// [`settle_await`] from its reaction (a microtask already), which polls the
/// task in the same turn, where `wasm_bindgen_futures::future_to_promise`
/// queues another microtask per wake-up (`queueMicrotask`, costly in
/// workerd).
pub fn spawn_promise<F>(future: F) -> Promise
where
    F: Future<Output = Result<JsValue, JsValue>> + 'static,
{
    let mut settle: Option<(Function, Function)> = None;
    let promise = Promise::new(&mut |resolve, reject| settle = Some((resolve, reject)));
    // `Promise` calls its executor before returning; not having the two
    // functions would be a runtime without promises.
    let Some((resolve, reject)) = settle else {
        return Promise::reject(&JsValue::from_str("the Promise executor was not called"));
    };
    let task = Task::new(async move {
        let _ = match future.await {
            Ok(value) => resolve.call1(&JsValue::UNDEFINED, &value),
            Err(error) => reject.call1(&JsValue::UNDEFINED, &error),
        };
    });
    Task::run(&task);
    promise
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Run {
    Idle,
    Polling,
    /// Woken while being polled: polled again when that poll returns.
    Woken,
    Done,
}

/// One future driven by its wake-ups alone (no queue: the isolate is
/// single-threaded, and a wake-up outside a poll polls at once).
pub struct Task {
    future: RefCell<Option<Pin<Box<dyn Future<Output = ()>>>>>,
    state: Cell<Run>,
}

impl Task {
    pub fn new(future: impl Future<Output = ()> + 'static) -> Rc<Task> {
        Rc::new(Task {
            future: RefCell::new(Some(Box::pin(future))),
            state: Cell::new(Run::Idle),
        })
    }

    /// Polls the task until it is pending without a wake-up or done; a
    /// wake-up during a poll (or a call while polling) asks for one more.
    pub fn run(task: &Rc<Task>) {
        match task.state.get() {
            Run::Idle => {}
            Run::Polling => {
                task.state.set(Run::Woken);
                return;
            }
            Run::Woken | Run::Done => return,
        }
        let waker = waker(Rc::clone(task));
        let mut cx = Context::from_waker(&waker);
        loop {
            task.state.set(Run::Polling);
            let ready = match task.future.borrow_mut().as_mut() {
                Some(future) => future.as_mut().poll(&mut cx).is_ready(),
                None => true,
            };
            if ready {
                task.state.set(Run::Done);
                // Dropped outside the borrow: dropping may wake or drop
                // other tasks.
                let finished = task.future.borrow_mut().take();
                drop(finished);
                return;
            }
            if task.state.get() != Run::Woken {
                task.state.set(Run::Idle);
                return;
            }
        }
    }

    #[cfg(test)]
    fn is_done(&self) -> bool {
        self.state.get() == Run::Done
    }
}

// A `Waker` holding an `Rc<Task>`. `Waker` is `Send` and `Sync` by
// contract; these wakers never leave the thread they were made on: the
// Worker's isolate has one (wasm32 without threads), and the native tests
// use them on the test's own thread.
static VTABLE: RawWakerVTable = RawWakerVTable::new(clone_raw, wake_raw, wake_by_ref_raw, drop_raw);

fn waker(task: Rc<Task>) -> Waker {
    let raw = RawWaker::new(Rc::into_raw(task).cast::<()>(), &VTABLE);
    // SAFETY: the vtable's functions treat the pointer as the `Rc<Task>`
    // made here (one strong count per waker), and the waker stays on this
    // thread (above).
    unsafe { Waker::from_raw(raw) }
}

unsafe fn clone_raw(data: *const ()) -> RawWaker {
    // SAFETY: `data` is a live `Rc<Task>`'s pointer (it is a waker's).
    unsafe { Rc::increment_strong_count(data.cast::<Task>()) };
    RawWaker::new(data, &VTABLE)
}

unsafe fn wake_raw(data: *const ()) {
    // SAFETY: takes over the waker's own count.
    let task = unsafe { Rc::from_raw(data.cast::<Task>()) };
    Task::run(&task);
}

unsafe fn wake_by_ref_raw(data: *const ()) {
    // SAFETY: borrows the waker's count without releasing it.
    let task = ManuallyDrop::new(unsafe { Rc::from_raw(data.cast::<Task>()) });
    Task::run(&task);
}

unsafe fn drop_raw(data: *const ()) {
    // SAFETY: releases the waker's own count.
    drop(unsafe { Rc::from_raw(data.cast::<Task>()) });
}

/// A slot handed out by [`Slab::open`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ticket {
    index: u32,
    key: u32,
}

enum State<T> {
    Vacant,
    /// Opened, not settled; the waker of the last poll.
    Waiting(Option<Waker>),
    Settled(T),
    /// Its future was dropped before the outcome came.
    Abandoned,
}

struct Slot<T> {
    key: u32,
    state: State<T>,
}

/// The slots of the awaits in flight: a slot is opened per await, settled
/// by its promise, and freed when its future takes the outcome (or, for an
/// abandoned one, when the outcome arrives).
pub struct Slab<T> {
    slots: Vec<Slot<T>>,
    vacant: Vec<u32>,
    next_key: u32,
}

impl<T> Slab<T> {
    pub fn new(first_key: u32) -> Self {
        Slab {
            slots: Vec::new(),
            vacant: Vec::new(),
            next_key: first_key,
        }
    }

    pub fn open(&mut self) -> Ticket {
        let key = self.next_key;
        self.next_key = self.next_key.wrapping_add(1);
        let slot = Slot {
            key,
            state: State::Waiting(None),
        };
        let index = match self.vacant.pop() {
            Some(index) => {
                self.slots[index as usize] = slot;
                index
            }
            None => {
                self.slots.push(slot);
                // More than u32::MAX awaits at once cannot fit in memory.
                (self.slots.len() - 1) as u32
            }
        };
        Ticket { index, key }
    }

    fn slot_mut(&mut self, index: u32, key: u32) -> Option<&mut Slot<T>> {
        self.slots
            .get_mut(index as usize)
            .filter(|slot| slot.key == key && !matches!(slot.state, State::Vacant))
    }

    fn vacate(&mut self, index: u32) -> Option<T> {
        let slot = &mut self.slots[index as usize];
        let state = std::mem::replace(&mut slot.state, State::Vacant);
        self.vacant.push(index);
        match state {
            State::Settled(value) => Some(value),
            _ => None,
        }
    }

    /// Stores the outcome for `index` if it still holds `key`; the waker to
    /// wake, if its future has polled. An abandoned slot is freed and the
    /// outcome dropped.
    pub fn settle(&mut self, index: u32, key: u32, value: T) -> Option<Waker> {
        let slot = self.slot_mut(index, key)?;
        match std::mem::replace(&mut slot.state, State::Vacant) {
            State::Waiting(waker) => {
                slot.state = State::Settled(value);
                waker
            }
            State::Abandoned => {
                self.vacant.push(index);
                None
            }
            // Settled twice (a promise settles once; a bogus call): the first
            // outcome stands.
            other => {
                slot.state = other;
                None
            }
        }
    }

    /// The outcome, freeing the slot, or `Pending` with `waker` kept.
    pub fn poll(&mut self, ticket: Ticket, waker: &Waker) -> Poll<T> {
        let Some(slot) = self.slot_mut(ticket.index, ticket.key) else {
            // Not reachable: a ticket's slot is held until its future is done.
            return Poll::Pending;
        };
        match &mut slot.state {
            State::Settled(_) => match self.vacate(ticket.index) {
                Some(value) => Poll::Ready(value),
                None => Poll::Pending,
            },
            State::Waiting(kept) => {
                if !kept.as_ref().is_some_and(|k| k.will_wake(waker)) {
                    *kept = Some(waker.clone());
                }
                Poll::Pending
            }
            State::Vacant | State::Abandoned => Poll::Pending,
        }
    }

    /// The future of `ticket` is gone: a settled slot is freed now, a
    /// waiting one when its outcome comes.
    pub fn abandon(&mut self, ticket: Ticket) {
        let Some(slot) = self.slot_mut(ticket.index, ticket.key) else {
            return;
        };
        match slot.state {
            State::Settled(_) => {
                self.vacate(ticket.index);
            }
            _ => slot.state = State::Abandoned,
        }
    }

    /// Slots not vacant (opened, settled or abandoned).
    #[cfg(test)]
    fn in_use(&self) -> usize {
        self.slots.len() - self.vacant.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counting_waker() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        (count.clone(), Waker::from(count))
    }

    #[test]
    fn an_outcome_settled_after_the_poll_wakes_and_is_taken_once() {
        let mut slab = Slab::new(7);
        let (woken, waker) = counting_waker();
        let ticket = slab.open();
        assert_eq!(slab.poll(ticket, &waker), Poll::Pending);
        let to_wake = slab.settle(ticket.index, ticket.key, "value");
        to_wake.expect("the polled future's waker").wake();
        assert_eq!(woken.0.load(Ordering::SeqCst), 1);
        assert_eq!(slab.poll(ticket, &waker), Poll::Ready("value"));
        assert_eq!(slab.in_use(), 0);
    }

    #[test]
    fn an_outcome_settled_before_the_first_poll_is_ready_without_a_waker() {
        let mut slab = Slab::new(0);
        let (_, waker) = counting_waker();
        let ticket = slab.open();
        assert!(slab.settle(ticket.index, ticket.key, 1).is_none());
        assert_eq!(slab.poll(ticket, &waker), Poll::Ready(1));
    }

    #[test]
    fn a_wrong_key_or_index_settles_nothing() {
        let mut slab = Slab::new(100);
        let (_, waker) = counting_waker();
        let ticket = slab.open();
        assert!(slab.settle(ticket.index, ticket.key + 1, 9).is_none());
        assert!(slab.settle(ticket.index + 1, ticket.key, 9).is_none());
        assert_eq!(slab.poll(ticket, &waker), Poll::Pending);
        slab.settle(ticket.index, ticket.key, 3);
        assert_eq!(slab.poll(ticket, &waker), Poll::Ready(3));
    }

    #[test]
    fn a_reused_slot_refuses_the_outcome_meant_for_its_previous_await() {
        let mut slab = Slab::new(u32::MAX);
        let (_, waker) = counting_waker();
        let first = slab.open();
        slab.settle(first.index, first.key, "first");
        assert_eq!(slab.poll(first, &waker), Poll::Ready("first"));
        let second = slab.open();
        assert_eq!(second.index, first.index, "the vacant slot is reused");
        assert_ne!(second.key, first.key);
        assert!(slab.settle(first.index, first.key, "stale").is_none());
        assert_eq!(slab.poll(second, &waker), Poll::Pending);
        slab.settle(second.index, second.key, "second");
        assert_eq!(slab.poll(second, &waker), Poll::Ready("second"));
    }

    #[test]
    fn an_abandoned_await_is_freed_when_its_promise_settles() {
        let mut slab = Slab::new(0);
        let (woken, waker) = counting_waker();
        let ticket = slab.open();
        assert_eq!(slab.poll(ticket, &waker), Poll::Pending);
        slab.abandon(ticket);
        assert_eq!(slab.in_use(), 1, "held until the promise settles");
        assert!(slab.settle(ticket.index, ticket.key, 5).is_none());
        assert_eq!(woken.0.load(Ordering::SeqCst), 0);
        assert_eq!(slab.in_use(), 0);
        // A late second settlement of the freed slot changes nothing.
        assert!(slab.settle(ticket.index, ticket.key, 6).is_none());
        assert_eq!(slab.in_use(), 0);
    }

    #[test]
    fn a_settled_await_dropped_unread_is_freed_at_once() {
        let mut slab = Slab::new(0);
        let ticket = slab.open();
        slab.settle(ticket.index, ticket.key, String::from("unread"));
        slab.abandon(ticket);
        assert_eq!(slab.in_use(), 0);
    }

    #[test]
    fn the_first_outcome_stands() {
        let mut slab = Slab::new(0);
        let (_, waker) = counting_waker();
        let ticket = slab.open();
        slab.settle(ticket.index, ticket.key, 1);
        slab.settle(ticket.index, ticket.key, 2);
        assert_eq!(slab.poll(ticket, &waker), Poll::Ready(1));
    }

    #[test]
    fn many_awaits_in_flight_each_get_their_own_outcome() {
        let mut slab = Slab::new(42);
        let (_, waker) = counting_waker();
        let tickets: Vec<Ticket> = (0..100).map(|_| slab.open()).collect();
        for (n, ticket) in tickets.iter().enumerate().rev() {
            slab.settle(ticket.index, ticket.key, n);
        }
        for (n, ticket) in tickets.iter().enumerate() {
            assert_eq!(slab.poll(*ticket, &waker), Poll::Ready(n));
        }
        assert_eq!(slab.in_use(), 0);
        let again: Vec<Ticket> = (0..100).map(|_| slab.open()).collect();
        assert_eq!(slab.slots.len(), 100, "vacant slots are reused");
        assert_eq!(again.len(), 100);
    }

    /// A future pending until `flag` is set, keeping its waker in `waker`.
    struct Flagged {
        flag: Rc<Cell<bool>>,
        waker: Rc<RefCell<Option<Waker>>>,
        polls: Rc<Cell<u32>>,
    }

    impl Future for Flagged {
        type Output = ();
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.polls.set(self.polls.get() + 1);
            if self.flag.get() {
                return Poll::Ready(());
            }
            *self.waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    #[test]
    fn a_task_is_polled_at_once_and_again_on_each_wake() {
        let (flag, waker, polls) = Default::default();
        let flagged = Flagged {
            flag: Rc::clone(&flag),
            waker: Rc::clone(&waker),
            polls: Rc::clone(&polls),
        };
        let finished = Rc::new(Cell::new(false));
        let seen = Rc::clone(&finished);
        let task = Task::new(async move {
            flagged.await;
            seen.set(true);
        });
        Task::run(&task);
        assert_eq!(polls.get(), 1);
        assert!(!finished.get());
        // A spurious wake-up polls again and stays pending.
        let first = waker.borrow_mut().take().expect("a waker");
        first.wake();
        assert_eq!(polls.get(), 2);
        flag.set(true);
        let second = waker.borrow().clone().expect("a waker");
        second.wake_by_ref();
        drop(second);
        assert_eq!(polls.get(), 3);
        assert!(finished.get());
        assert!(task.is_done());
        // The future is dropped once done, with the waker's task count.
        drop(waker.borrow_mut().take());
        assert_eq!(Rc::strong_count(&task), 1);
        // A late wake-up of a finished task does nothing.
        Task::run(&task);
        assert_eq!(polls.get(), 3);
    }

    #[test]
    fn a_wake_during_a_poll_polls_once_more_after_it() {
        let polls = Rc::new(Cell::new(0));
        let counted = Rc::clone(&polls);
        let task = Task::new(std::future::poll_fn(move |cx| {
            counted.set(counted.get() + 1);
            if counted.get() < 3 {
                // Woken from inside its own poll: no nested poll.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Poll::Ready(())
        }));
        Task::run(&task);
        assert_eq!(polls.get(), 3);
        assert!(task.is_done());
    }

    #[test]
    fn the_waker_of_the_latest_poll_is_the_one_woken() {
        let mut slab = Slab::new(0);
        let (first, first_waker) = counting_waker();
        let (second, second_waker) = counting_waker();
        let ticket = slab.open();
        assert_eq!(slab.poll(ticket, &first_waker), Poll::Pending);
        assert_eq!(slab.poll(ticket, &second_waker), Poll::Pending);
        slab.settle(ticket.index, ticket.key, ())
            .expect("a waker")
            .wake();
        assert_eq!(first.0.load(Ordering::SeqCst), 0);
        assert_eq!(second.0.load(Ordering::SeqCst), 1);
    }
}
