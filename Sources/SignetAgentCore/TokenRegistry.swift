import Synchronization
import SignetCore
import SignetPKCS11

/// The tokens the agent knows, one worker each, kept in step with what the
/// modules report: a token that appears (a card inserted, a software token
/// created) gets a worker; one that disappears loses its session and its
/// unlocked state, and gets them back only after it is presented and unlocked again.
final class TokenRegistry: Sendable {
    let context: PKCS11Context
    /// Tokens seen by this user's agents, before this one too.
    let known: KnownTokens
    private let workers = Mutex<[String: TokenWorker]>([:])
    private let scanLock = Mutex(())

    init(context: PKCS11Context, stateDirectory: String) {
        self.context = context
        known = KnownTokens(directory: stateDirectory)
        refresh()
    }

    /// Rescans every module's slots and returns the present tokens' workers.
    @discardableResult
    func refresh() -> [TokenWorker] {
        scanLock.withLock { _ in
            let scan = ModuleWatch.shared.watching(.scan) { context.scanTokens() }
            let present = scan.tokens
            var byIdentity: [String: Token] = [:]
            for token in present { byIdentity[token.identity] = token }
            var new: [Token] = []
            let known = workers.withLock { current in
                for token in present where current[token.identity] == nil {
                    current[token.identity] = TokenWorker(token: token)
                    new.append(token)
                }
                return Array(current.values)
            }
            for token in new { self.known.note(token) }
            for worker in known {
                if let token = byIdentity[worker.identity] {
                    worker.update(present: token)
                } else if !scan.isUncertain(worker.token) {
                    // Gone only when its module said so: an error that says nothing about the token
                    // must not log it out (that lost a software token's unlock in a benchmark run).
                    worker.update(present: nil)
                }
            }
            return present.compactMap { token in workers.withLock { $0[token.identity] } }
        }
    }

    /// Whether a request for `uri` may wait for the token to be presented: it names a token this
    /// agent has seen (present or not) or one the user's agents have seen before.
    func mayAppear(_ uri: PKCS11URI) -> Bool {
        if workers.withLock({ $0.values.contains { uri.matches($0.token) } }) { return true }
        return !known.matching(uri).isEmpty
    }

    /// Workers of tokens present at the last scan.
    var presentWorkers: [TokenWorker] {
        workers.withLock { Array($0.values) }.filter(\.isPresent).sorted { $0.identity < $1.identity }
    }

    /// The one present token `uri` selects (all tokens when nil), rescanning once if none matches.
    /// - Throws: `.noToken` when none matches, `.tokenAmbiguous` when several do.
    func resolve(_ uri: PKCS11URI?) throws(AgentFailure) -> TokenWorker {
        func matching() -> [TokenWorker] {
            workers.withLock { Array($0.values) }.filter { $0.isPresent && (uri?.matches($0.token) ?? true) }
        }
        var candidates = matching()
        if candidates.isEmpty {
            refresh()
            candidates = matching()
        }
        guard let first = candidates.first else {
            throw AgentFailure(.noToken, uri.map { "No token matches \($0)." } ?? "No token is present.")
        }
        guard candidates.count == 1 else {
            throw AgentFailure(.tokenAmbiguous, PKCS11URI.ambiguity(uri?.description,
                                                                    tokens: candidates.map { "\($0.label) serial \($0.token.info.serialNumber)" }))
        }
        return first
    }
}
