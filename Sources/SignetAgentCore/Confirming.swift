/// The answer to "may this program use this key?", as a person gave it (or why none came).
///
/// The same cases as the pinentry client's `ConfirmAnswer` (issue 18, parts 1–3: `CONFIRM` with
/// Allow / Deny / "Allow for 5 minutes"); when both are merged, one of the two definitions goes.
enum ConfirmAnswer: Sendable, Equatable {
    case allow
    case allowFor5Minutes
    case deny
    case cancelled
    case timedOut
    /// No display and no terminal is known for the connection.
    case nowhereToAsk
}

/// Asks the person at the connection's screen or terminal to confirm one use of a key.
///
/// The agent's real one is the pinentry `CONFIRM` prompt (built apart, in the prompting work); until it
/// is plugged in, `NoConfirmer` answers `nowhereToAsk`, so a `confirm` rule refuses with a clear message.
/// Tests use a scripted one.
protocol Confirming: Sendable {
    /// Shows `text` and waits at most `timeout` seconds for the answer.
    /// - Parameters:
    ///   - connection: the client's connection (where its display and terminal are recorded).
    ///   - peer: the program asking, as identified.
    func confirm(_ text: String, connection: ConnectionCache, peer: PeerProcess, timeout: Double) -> ConfirmAnswer
}

/// The confirmer while no prompt can be shown: always `nowhereToAsk`.
struct NoConfirmer: Confirming {
    init() {}
    func confirm(_ text: String, connection: ConnectionCache, peer: PeerProcess, timeout: Double) -> ConfirmAnswer { .nowhereToAsk }
}
