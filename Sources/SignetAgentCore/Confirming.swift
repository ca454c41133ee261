/// Asks the person at the connection's screen or terminal to confirm one use of a key
/// (`ConfirmAnswer`, in Prompting.swift).
///
/// The agent's is `PinentryConfirmer`, pinentry's `CONFIRM` with Allow / Deny / "Allow for 5 minutes"
/// on the screen or terminal the client named (`clientEnvironment`); `NoConfirmer` answers
/// `nowhereToAsk`. Tests use a scripted one.
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

/// The agent's confirmer: pinentry's `CONFIRM` on the screen or terminal the connection named.
struct PinentryConfirmer: Confirming {
    /// `pinentry-program`, read when asked (the settings change on SIGHUP).
    let program: @Sendable () -> String?

    func confirm(_ text: String, connection: ConnectionCache, peer: PeerProcess, timeout: Double) -> ConfirmAnswer {
        Prompting.confirm(text, for: connection.environment, timeout: timeout, program: program())
    }
}

/// The request handler, for a confirmer made before it (set once, before any connection is served).
final class HandlerReference: @unchecked Sendable {
    weak var handler: RequestHandler?
}
