/// Asks the person at the connection's screen or terminal to confirm one use of a key
/// (`ConfirmAnswer`, in Prompting.swift).
///
/// The agent's is `PinentryConfirmer`, pinentry's `CONFIRM` with "Allow once" / "Allow for 5 minutes" /
/// "Deny" on the screen or terminal the client named (`clientEnvironment`); `NoConfirmer` answers
/// `nowhereToAsk`. Tests use a scripted one.
protocol Confirming: Sendable {
    /// Shows `question` (its words escaped: `ConfirmQuestion.description`) and waits at most `timeout`
    /// seconds for the answer.
    /// - Parameters:
    ///   - connection: the client's connection (where its display and terminal are recorded).
    ///   - peer: the program asking, as identified.
    func confirm(_ question: ConfirmQuestion, connection: ConnectionState, peer: PeerProcess, timeout: Double) -> ConfirmAnswer
}

/// The confirmer while no prompt can be shown: always `nowhereToAsk`.
struct NoConfirmer: Confirming {
    init() {}
    func confirm(_ question: ConfirmQuestion, connection: ConnectionState, peer: PeerProcess, timeout: Double) -> ConfirmAnswer { .nowhereToAsk }
}

/// The agent's confirmer: pinentry's `CONFIRM` on the screen or terminal the connection named, one
/// prompt per place at a time (`queue`, shared with the unlock prompts).
struct PinentryConfirmer: Confirming {
    /// `pinentry-program`, read when asked (the settings change on SIGHUP).
    let program: @Sendable () -> String?
    let queue: PromptQueue

    func confirm(_ question: ConfirmQuestion, connection: ConnectionState, peer: PeerProcess, timeout: Double) -> ConfirmAnswer {
        Prompting.confirm(question, for: connection.environment, caller: peer, queue: queue, timeout: timeout, program: program())
    }
}

/// The request handler, for a confirmer made before it (set once, before any connection is served).
final class HandlerReference: @unchecked Sendable {
    weak var handler: RequestHandler?
}
