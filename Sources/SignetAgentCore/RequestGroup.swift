import SignetAccessCode
import SignetAgentProtocol
import SignetCore

/// A group of requests that belong together (access codes, key operations,
/// objects, the agent itself), in one file each.
///
/// To add a request: its case, `Kind` and table row in `SignetAgentProtocol` (the compiler asks for the
/// kind and bytes, the protocol tests for the row), its kind in `RequestHandler.group(for:)` (the compiler
/// asks), one `case` in that group's `route` (`RequestGroupTests` asks), and its line in `docs/protocol.md`
/// (`ProtocolDocsTests` asks).
protocol RequestGroup: SendableMetatype {
    /// How this group handles `request`, or nil when the request is not this group's.
    static func route(_ request: AgentRequest) -> Route?
}

/// One request as its group takes it: what the audit log records a failure
/// under, the token and key it names (URIs, never codes or data), and the work.
struct Route {
    /// The action a failure is recorded under; nil for reads, which are not recorded.
    var action: AuditAction?
    var token: String?
    var key: String?
    var run: (RequestContext) throws(AgentFailure) -> AgentResponse

    init(_ action: AuditAction? = nil, token: String? = nil, key: String? = nil,
         _ run: @escaping (RequestContext) throws(AgentFailure) -> AgentResponse) {
        self.action = action; self.token = token; self.key = key; self.run = run
    }
}

/// What a handler gets for one request: the agent's shared state and who asked.
struct RequestContext {
    let agent: RequestHandler
    let peer: PeerProcess
    /// When the request arrived (for the audit log's duration).
    let start: Double
    let cache: ConnectionState
    /// Sends an interim message (present your token) before the answer.
    let notify: (AgentResponse) -> Void

    var registry: TokenRegistry { agent.registry }
    var manager: AccessCodeManager { agent.manager }

    /// `text` as a PKCS#11 URI, parsed once per connection.
    /// - Throws: `.invalidArgument` when it is not one.
    func parse(_ text: String) throws(AgentFailure) -> PKCS11URI { try cache.uri(text) }

    /// The one present token `text` selects (the only one when nil), without waiting.
    /// - Throws: `.invalidArgument`, `.noToken`, `.tokenAmbiguous`.
    func resolve(_ text: String?) throws(AgentFailure) -> TokenWorker {
        try registry.resolve(try text.map { (text) throws(AgentFailure) in try parse(text) })
    }

    /// The token `text` selects; when it is absent but known, asks the client to present it and waits.
    /// - Throws: as `resolve`, and `.tokenAbsent` or `.shuttingDown` when the wait ends without it.
    func awaitToken(_ text: String?) throws(AgentFailure) -> TokenWorker {
        try agent.awaitToken(try text.map { (text) throws(AgentFailure) in try parse(text) }, notify: notify)
    }

    /// Records a success (or any result) of `action` for this request's peer.
    func record(_ action: AuditAction, result: String = "ok", token: String? = nil, key: String? = nil, detail: String? = nil) {
        agent.record(action, result: result, peer: peer, start: start, token: token, key: key, detail: detail)
    }
}
