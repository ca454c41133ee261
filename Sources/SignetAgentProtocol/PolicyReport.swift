/// What `signet policy` shows (the answer to `policy`): the `clients` files the agent read, the rules
/// in effect with the file and line of each, and the programs that used keys recently.
/// The format of the files is `docs/clients.md`.
public struct PolicyReport: Sendable, Equatable {
    /// One `clients` file: the administrator's (`/etc/signet/clients`) or the user's.
    public struct File: Sendable, Equatable {
        public enum State: UInt8, Sendable, Equatable {
            /// There is no such file.
            case absent = 0
            /// Read; its rules are in effect.
            case loaded = 1
            /// Refused (unsafe permissions, an error in a line): every key use is denied until it is fixed.
            case refused = 2
        }
        public var path: String
        public var administrator: Bool
        public var state: State
        /// Why a refused file was refused, each problem with its line where it has one; empty otherwise.
        public var problems: [String]

        public init(path: String, administrator: Bool, state: State, problems: [String] = []) {
            self.path = path; self.administrator = administrator; self.state = state; self.problems = problems
        }
    }

    /// One rule, as the agent understood it.
    public struct Rule: Sendable, Equatable {
        public var file: String
        public var line: UInt32
        /// `allow`, `confirm` or `deny`.
        public var action: String
        /// The executable's path (symbolic links resolved), or `*`.
        public var program: String
        /// The script an interpreter runs, when the rule names one.
        public var script: String?
        /// The key pattern as written: `*`, a PKCS#11 URI, `id:HEX` or `label:TEXT`.
        public var key: String
        /// `sign`, `decrypt`, `derive`: the operations the rule applies to.
        public var operations: [String]

        public init(file: String, line: UInt32, action: String, program: String, script: String?, key: String, operations: [String]) {
            self.file = file; self.line = line; self.action = action; self.program = program; self.script = script
            self.key = key; self.operations = operations
        }
    }

    /// What became of a key use, as a value on the wire (`word` is the audit log's word for it).
    public enum Decision: UInt8, Sendable, Equatable, CaseIterable {
        /// A rule allowed it.
        case allowed = 1
        /// A rule asked, and the person said yes (now or within the last 5 minutes).
        case confirmed = 2
        /// A rule, a refused file, or the person at the prompt refused it.
        case denied = 3
        /// The prompt was cancelled.
        case promptCancelled = 4
        /// Nobody answered the prompt in time.
        case promptTimedOut = 5
        /// The screen or terminal the program named is not its own, so nobody was asked.
        case promptRefused = 6
        /// The program named no screen or terminal to ask on.
        case nowhereToAsk = 7

        /// The audit log's word: `allowed`, `confirmed`, `denied`, `prompt-cancelled`, ….
        public var word: String {
            switch self {
            case .allowed: "allowed"
            case .confirmed: "confirmed"
            case .denied: "denied"
            case .promptCancelled: "prompt-cancelled"
            case .promptTimedOut: "prompt-timed-out"
            case .promptRefused: "prompt-refused"
            case .nowhereToAsk: "nowhere-to-ask"
            }
        }
    }

    /// A program that used (or was refused) a key recently.
    public struct Use: Sendable, Equatable {
        /// The executable, or interpreter and script, as the agent identified it.
        public var program: String
        public var pid: UInt32
        public var key: String
        public var operation: String
        /// What became of it.
        public var verdict: Decision
        /// `verdict` in the audit log's words (`allowed`, `confirmed`, `denied`, `prompt-cancelled`, …).
        public var decision: String { verdict.word }
        /// UTC, ISO 8601, of the latest such use.
        public var time: String
        /// How many times since the agent started (or this entry was first kept).
        public var count: UInt32

        public init(program: String, pid: UInt32, key: String, operation: String, verdict: Decision, time: String, count: UInt32) {
            self.program = program; self.pid = pid; self.key = key; self.operation = operation; self.verdict = verdict
            self.time = time; self.count = count
        }
    }

    public var files: [File]
    public var rules: [Rule]
    public var recent: [Use]

    public init(files: [File], rules: [Rule], recent: [Use]) {
        self.files = files; self.rules = rules; self.recent = recent
    }

    func write(_ w: WireWriter) {
        w.array(files) { file in
            w.string(file.path); w.bool(file.administrator); w.u8(file.state.rawValue); w.array(file.problems, w.string)
        }
        w.array(rules) { rule in
            w.string(rule.file); w.u32(rule.line); w.string(rule.action); w.string(rule.program); w.optional(rule.script, w.string)
            w.string(rule.key); w.array(rule.operations, w.string)
        }
        w.array(recent) { use in
            w.string(use.program); w.u32(use.pid); w.string(use.key); w.string(use.operation); w.u8(use.verdict.rawValue)
            w.string(use.time); w.u32(use.count)
        }
    }

    static func read(_ r: inout WireReader) throws(WireError) -> PolicyReport {
        func text(_ r: inout WireReader) throws(WireError) -> String { try r.string() }
        let files = try r.array { (r: inout WireReader) throws(WireError) -> File in
            let path = try r.string(), administrator = try r.bool(), raw = try r.u8()
            guard let state = File.State(rawValue: raw) else { throw WireError("unknown clients file state \(raw)") }
            return File(path: path, administrator: administrator, state: state, problems: try r.array(text))
        }
        let rules = try r.array { (r: inout WireReader) throws(WireError) -> Rule in
            Rule(file: try r.string(), line: try r.u32(), action: try r.string(), program: try r.string(), script: try r.optional(text),
                 key: try r.string(), operations: try r.array(text))
        }
        let recent = try r.array { (r: inout WireReader) throws(WireError) -> Use in
            let program = try r.string(), pid = try r.u32(), key = try r.string(), operation = try r.string(), raw = try r.u8()
            guard let verdict = Decision(rawValue: raw) else { throw WireError("unknown policy decision \(raw)") }
            return Use(program: program, pid: pid, key: key, operation: operation, verdict: verdict, time: try r.string(), count: try r.u32())
        }
        return PolicyReport(files: files, rules: rules, recent: recent)
    }
}
