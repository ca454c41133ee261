#if canImport(Glibc)
import Glibc
#endif

/// State behind a plain pthread mutex. Unlike `Synchronization.Mutex` on Linux
/// (priority-inheritance futexes, spinning before sleeping), a waiter here
/// sleeps at once: right for locks held across slow token calls, where
/// spinning waiters would take the CPU from the thread doing the work.
public final class BlockingLock<State>: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var state: State

    public init(_ state: State) {
        self.state = state
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Runs `body` with the state, holding the lock.
    /// - Throws: what `body` throws (the lock is released).
    public func withLock<R, E: Error>(_ body: (inout State) throws(E) -> R) throws(E) -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&state)
    }

    /// Makes the lock free again in the child of a `fork`, whatever its state was in the parent: a thread
    /// of the parent may have held it at the fork, and that thread does not exist in the child, so the lock
    /// would never be released there. Call it only from a `pthread_atfork` child handler (the child has one
    /// thread then); the state is left as it was.
    public func reinitializeInForkedChild() {
        pthread_mutex_init(mutex, nil)
    }

    /// Runs `body` only if the lock is free; nil otherwise.
    public func withLockIfAvailable<R>(_ body: (inout State) -> R) -> R? {
        guard pthread_mutex_trylock(mutex) == 0 else { return nil }
        defer { pthread_mutex_unlock(mutex) }
        return body(&state)
    }
}

/// A value that arrives once; readers wait for it.
public final class Gate<Value>: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let ready = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var value: Value?

    public init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(ready, nil)
    }

    /// Sets the value and wakes every waiter.
    public func open(_ newValue: Value) {
        pthread_mutex_lock(mutex)
        value = newValue
        pthread_cond_broadcast(ready)
        pthread_mutex_unlock(mutex)
    }

    /// The value, waiting until it is set.
    public var wait: Value {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while value == nil { pthread_cond_wait(ready, mutex) }
        return value!
    }
}
