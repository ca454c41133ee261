#if canImport(Glibc)
import Glibc
#endif
import SignetAgentProtocol
import SignetCore
import SignetPKCS11

extension RequestHandler {
    /// The token `uri` selects; when none is present, asks the client to present it and waits.
    func awaitToken(_ uri: PKCS11URI?, notify: (AgentResponse) -> Void) throws(AgentFailure) -> TokenWorker {
        do throws(AgentFailure) {
            return try registry.resolve(uri)
        } catch where error.code == .noToken {
            if let uri, !registry.mayAppear(uri) {
                let names = registry.known.names
                throw AgentFailure(.noToken, "No token you have used matches \(uri). "
                    + (names.isEmpty ? "No token has been seen yet: insert yours and run `signet tokens`."
                                     : "Known tokens: \(names.prefix(8).joined(separator: ", ")). Check the URI with `signet tokens`, or insert the token and try again."))
            }
            let wait = currentSettings.presenceWait
            let what = uri.map { $0.text("token").map { "\"\($0)\"" } ?? $0.description } ?? "your token"
            notify(.notice(.presentToken, message: "Present \(what): insert it or tap it on the reader (waiting \(Int(wait)) s)."))
            let deadline = MonotonicClock.seconds() + wait
            while MonotonicClock.seconds() < deadline, !stopping.load(ordering: .relaxed) {
                usleep(200_000)
                registry.refresh()
                if let worker = try? registry.resolve(uri) { return worker }
            }
            if stopping.load(ordering: .relaxed) { throw AgentFailure(.shuttingDown, "The agent is stopping; try again once it has restarted.") }
            throw AgentFailure(.tokenAbsent, "\(what.prefix(1).uppercased() + what.dropFirst()) was not presented within \(Int(wait)) s. Present it and try again.")
        }
    }
}
