import SignetAccessCode
import SignetAgentProtocol
import SignetPKCS11

extension RequestHandler {
    /// The present tokens as the wire lists them.
    func tokenEntries() -> [TokenEntry] {
        let manager = self.manager
        // The housekeeping thread rescans slots every second: listing does not wait for a
        // rescan (a module probing an unknown card can take seconds).
        var gone = false
        defer { if gone { registry.refresh() } }  // a token found gone: the next request must know it at once
        return registry.presentWorkers.compactMap { worker in
            do throws(AgentFailure) {
                return try entry(worker, manager)
            } catch {
                if error.code == .tokenRemoved { gone = true }
                return nil
            }
        }
    }

    func entry(_ worker: TokenWorker, _ manager: AccessCodeManager) throws(AgentFailure) -> TokenEntry {
        try worker.run(use: false) { (state) throws(PKCS11Error) -> TokenEntry in
                let target = PKCS11CodeTarget(token: state.token, session: try state.openSession())
                let status = manager.status(target)
                return TokenEntry(
                    uri: state.token.uri.description, label: state.token.info.label, manufacturer: state.token.info.manufacturer,
                    model: state.token.info.model, serial: state.token.info.serialNumber, software: state.token.isSoftware,
                    unlocked: state.unlocked, failures: UInt32(status.failures), triesLeft: UInt32(status.triesLeft),
                    lockedSeconds: status.lockedRemaining.map { UInt32($0.seconds.rounded(.up)) },
                    tokenCounter: status.card.words, ledgerDamage: status.damaged, changes: state.changes,
                    cardCounter: status.card.wire)
        }
    }
}
