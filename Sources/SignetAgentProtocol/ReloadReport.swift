/// The answer to `reload`: what the agent read, sent once the new settings are in force, so a client
/// (`signet agent reload`, a test) can rely on them as soon as it has the answer.
public struct ReloadReport: Sendable, Equatable {
    /// One setting in force, named as in the configuration file (`idle-lock-minutes`, `pinentry-program`, …).
    public struct Setting: Sendable, Equatable {
        public var name: String
        public var value: String

        public init(name: String, value: String) { self.name = name; self.value = value }
    }

    /// The settings now in force, defaults included.
    public var settings: [Setting]
    /// How many client rules (`docs/clients.md`) are now in force.
    public var clientRules: UInt32
    /// Configuration and policy files that were not read because others could have written them, each naming
    /// the file and why. While there are any, the agent refuses to unlock tokens, use keys or write to tokens.
    public var refusals: [String]
    /// Everything found wrong, as `status` lists it: refused files, values not taken, refused `clients` files.
    public var problems: [String]

    public init(settings: [Setting], clientRules: UInt32, refusals: [String], problems: [String]) {
        self.settings = settings; self.clientRules = clientRules; self.refusals = refusals; self.problems = problems
    }

    func write(_ w: WireWriter) {
        w.array(settings) { w.string($0.name); w.string($0.value) }
        w.u32(clientRules); w.array(refusals, w.string); w.array(problems, w.string)
    }

    static func read(_ r: inout WireReader) throws(WireError) -> ReloadReport {
        func text(_ r: inout WireReader) throws(WireError) -> String { try r.string() }
        let settings = try r.array { (r: inout WireReader) throws(WireError) -> Setting in Setting(name: try r.string(), value: try r.string()) }
        return ReloadReport(settings: settings, clientRules: try r.u32(), refusals: try r.array(text), problems: try r.array(text))
    }
}
