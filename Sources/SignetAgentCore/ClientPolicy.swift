#if canImport(Glibc)
import Glibc
#endif
import SignetAgentProtocol
import SignetCore
import SignetPKCS11

/// A private-key operation, as `clients` rules name it.
enum KeyOperation: String, CaseIterable, Sendable {
    case sign, decrypt, derive
}

/// What a rule does; ordered from the most lenient to the strictest.
enum PolicyAction: Int, Comparable, Sendable {
    case allow = 0, confirm, deny

    static func < (lhs: PolicyAction, rhs: PolicyAction) -> Bool { lhs.rawValue < rhs.rawValue }

    var word: String {
        switch self {
        case .allow: "allow"
        case .confirm: "confirm"
        case .deny: "deny"
        }
    }
}

/// What the agent knows of the key a request names, for rules that name keys.
struct KeyFacts: Sendable {
    var token: Token
    var label: String?
    var id: [UInt8]?
}

/// One line of a `clients` file (format: `docs/clients.md`).
struct ClientRule: Sendable {
    enum KeyPattern: Sendable {
        case any
        case uri(PKCS11URI)
        case id([UInt8])
        case label(String)
    }

    var file: String
    var line: Int
    var action: PolicyAction
    /// The executable's path with symbolic links resolved; nil for `*`.
    var program: String?
    /// The script an interpreter runs; nil for any.
    var script: String?
    var key: KeyPattern
    /// The key pattern as written, for listings.
    var keyText: String
    var operations: Set<KeyOperation>

    var origin: String { "\(file):\(line)" }

    func matches(_ peer: PeerProcess) -> Bool {
        if let program {
            guard !peer.exited, peer.executable == program else { return false }
        }
        if let script {
            guard !peer.exited, peer.script == script else { return false }
        }
        return true
    }

    /// Whether the rule's key pattern selects the key; nil when that needs `facts` and there are none.
    func matches(_ facts: KeyFacts?) -> Bool? {
        switch key {
        case .any: return true
        case .uri(let pattern):
            guard let facts else { return nil }
            guard pattern.matches(facts.token) else { return false }
            if let type = pattern.text("type"), type != "private" { return false }
            if let label = pattern.text("object"), label != facts.label { return false }
            if let id = pattern.value("id"), id != facts.id { return false }
            return true
        case .id(let id):
            guard let facts else { return nil }
            return facts.id == id
        case .label(let label):
            guard let facts else { return nil }
            return facts.label == label
        }
    }

    var report: PolicyReport.Rule {
        PolicyReport.Rule(file: file, line: UInt32(line), action: action.word, program: program ?? "*", script: script, key: keyText,
                          operations: KeyOperation.allCases.filter(operations.contains).map(\.rawValue))
    }
}

/// One `clients` file as loaded: its rules, or why it was refused.
struct ClientPolicyFile: Sendable {
    var path: String
    var administrator: Bool
    var present: Bool
    var rules: [ClientRule]
    /// Why the file is refused (empty when it is in effect): each problem with the file, and its line.
    var problems: [String]

    var refused: Bool { !problems.isEmpty }

    /// The first rule that applies to this program, operation and key: `.some(nil)` when none does,
    /// nil when one that names a key might and `facts` is nil.
    func firstMatch(_ peer: PeerProcess, _ operation: KeyOperation, _ facts: KeyFacts?) -> ClientRule?? {
        for rule in rules where rule.operations.contains(operation) && rule.matches(peer) {
            guard let matched = rule.matches(facts) else { return nil }
            if matched { return .some(rule) }
        }
        return .some(nil)
    }

    /// The first rule that applies, a rule naming a key counting as not matching when `facts` is nil.
    func decidingRule(_ peer: PeerProcess, _ operation: KeyOperation, _ facts: KeyFacts?) -> ClientRule? {
        rules.first { $0.operations.contains(operation) && $0.matches(peer) && $0.matches(facts) == true }
    }
}

/// How the agent decided one key use.
struct PolicyDecision: Sendable {
    var action: PolicyAction
    /// The rule that decided; nil for the default (allow) and for a refused file.
    var rule: ClientRule?
    /// For a refused file: which, and why.
    var refusal: String?
}

/// The per-client rules: the administrator's `/etc/signet/clients` and the user's
/// `$XDG_CONFIG_HOME/signet/clients`. In each file the first rule that matches the program, the
/// operation and the key decides; of the two files' decisions the stricter wins (deny over confirm
/// over allow), so a user's file can tighten what the administrator allows, never loosen it.
/// No matching rule allows: with no files this is Signet's behaviour before rules existed.
/// A file that is unsafe (writable by group or others, not owned by its user or by root, or in a directory
/// others could write: `ProtectedFile`) or has an error in any line is refused as a whole, and every key use
/// is denied until it is fixed.
struct ClientPolicy: Sendable {
    var files: [ClientPolicyFile]

    static let none = ClientPolicy(files: [])

    /// True when no rule applies and no file is refused: every key use is allowed, as before rules existed.
    var isDefault: Bool { files.allSatisfy { $0.rules.isEmpty && !$0.refused } }

    var rules: [ClientRule] { files.flatMap(\.rules) }

    /// Every problem of every refused file, for the agent's log.
    var problems: [String] { files.flatMap(\.problems) }

    /// Reads both files. `administrator` is the administrator's (owned by root), `user` the user's
    /// (owned by this user or root).
    static func load(administrator: String, user: String) -> ClientPolicy {
        ClientPolicy(files: [loadFile(administrator, administrator: true), loadFile(user, administrator: false)])
    }

    static func loadFile(_ path: String, administrator: Bool) -> ClientPolicyFile {
        var file = ClientPolicyFile(path: path, administrator: administrator, present: true, rules: [], problems: [])
        switch ProtectedFile.read(path, owner: administrator ? .administrator : .user, limit: 1 << 20, risk: "allow themselves your keys") {
        case .absent:
            file.present = false
        case .refused(let problems):
            file.problems = problems
        case .text(let text):
            let (rules, problems) = parse(text, file: path)
            file.rules = problems.isEmpty ? rules : []
            file.problems = problems
        }
        return file
    }

    /// The rules of one file's text, and a problem (with its line) for each line that is not one.
    static func parse(_ text: String, file: String) -> (rules: [ClientRule], problems: [String]) {
        var rules: [ClientRule] = []
        var problems: [String] = []
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let where_ = "\(file):\(index + 1)"
            do throws(RuleError) {
                if let rule = try parseLine(String(line), file: file, line: index + 1) { rules.append(rule) }
            } catch {
                problems.append("\(where_): \(error.reason)")
            }
        }
        return (rules, problems)
    }

    struct RuleError: Error { var reason: String }

    static let words = ["program", "script", "key", "operations"]

    /// One rule from `ACTION program=… [script=…] [key=…] [operations=…]`, or nil for a blank or comment line.
    static func parseLine(_ line: String, file: String, line number: Int) throws(RuleError) -> ClientRule? {
        let tokens = try split(line)
        guard let first = tokens.first else { return nil }
        let action: PolicyAction
        switch first {
        case "allow": action = .allow
        case "confirm": action = .confirm
        case "deny": action = .deny
        default:
            throw RuleError(reason: "a rule starts with allow, confirm or deny, not \"\(first)\"")
        }
        var values: [String: String] = [:]
        for token in tokens.dropFirst() {
            guard let eq = token.firstIndex(of: "=") else {
                throw RuleError(reason: "\"\(token)\" is not NAME=VALUE (names: \(words.joined(separator: ", ")))")
            }
            let name = String(token[..<eq]), value = String(token[token.index(after: eq)...])
            guard words.contains(name) else { throw RuleError(reason: "unknown name \"\(name)\" (known: \(words.joined(separator: ", ")))") }
            guard values[name] == nil else { throw RuleError(reason: "\(name)= is given twice") }
            guard !value.isEmpty else { throw RuleError(reason: "\(name)= has no value") }
            values[name] = value
        }
        guard let programText = values["program"] else {
            throw RuleError(reason: "the rule names no program (program=/path/to/executable, or program=* for every program)")
        }
        var program: String?
        if programText != "*" {
            guard programText.hasPrefix("/") else { throw RuleError(reason: "program=\(programText) is not an absolute path or *") }
            program = resolved(programText)
        }
        var script: String?
        if let scriptText = values["script"] {
            if scriptText.hasPrefix("/") {
                script = resolved(scriptText)
            } else if scriptText == "-c" || scriptText == "-e" || scriptText == "-E" || scriptText.hasPrefix("-m ") {
                script = scriptText
            } else {
                throw RuleError(reason: "script=\(scriptText) is not an absolute path (or -c, -e, \"-m MODULE\")")
            }
        }
        let keyText = values["key"] ?? "*"
        let key: ClientRule.KeyPattern
        if keyText == "*" {
            key = .any
        } else if keyText.hasPrefix("pkcs11:") {
            let uri: PKCS11URI
            do throws(PKCS11URI.ParseError) {
                uri = try PKCS11URI(parsing: keyText)
            } catch {
                throw RuleError(reason: "key=\(keyText): \(error.description)")
            }
            if uri.value("pin-value") != nil || uri.value("pin-source") != nil {
                throw RuleError(reason: "key=\(keyText): a rule's URI may not hold pin-value or pin-source")
            }
            key = .uri(uri)
        } else if keyText.hasPrefix("id:") {
            guard let id = Hex.decode(String(keyText.dropFirst(3))), !id.isEmpty else {
                throw RuleError(reason: "key=\(keyText): id: is followed by the key's CKA_ID in hex (as `signet keys` shows it)")
            }
            key = .id(id)
        } else if keyText.hasPrefix("label:"), keyText.count > 6 {
            key = .label(String(keyText.dropFirst(6)))
        } else {
            throw RuleError(reason: "key=\(keyText) is not *, a pkcs11: URI, id:HEX or label:TEXT")
        }
        var operations = Set(KeyOperation.allCases)
        if let text = values["operations"] {
            operations = []
            for word in text.split(separator: ",", omittingEmptySubsequences: false) {
                guard let operation = KeyOperation(rawValue: String(word)) else {
                    throw RuleError(reason: "operations=\(text): \"\(word)\" is not sign, decrypt or derive")
                }
                operations.insert(operation)
            }
        }
        return ClientRule(file: file, line: number, action: action, program: program, script: script, key: key, keyText: keyText,
                          operations: operations)
    }

    /// The words of a line: separated by spaces or tabs; `"…"` quotes (with `\"` and `\\`) inside a word;
    /// `#` at the start of a word begins a comment.
    static func split(_ line: String) throws(RuleError) -> [String] {
        var tokens: [String] = []
        var current = ""
        var inWord = false, quoted = false, escaped = false
        for character in line {
            if escaped { current.append(character); escaped = false; continue }
            if quoted {
                switch character {
                case "\\": escaped = true
                case "\"": quoted = false
                default: current.append(character)
                }
                continue
            }
            switch character {
            case " ", "\t", "\r":
                if inWord { tokens.append(current); current = ""; inWord = false }
            case "#" where !inWord:
                return tokens
            case "\"":
                quoted = true; inWord = true
            default:
                current.append(character); inWord = true
            }
        }
        if quoted { throw RuleError(reason: "a quote is not closed") }
        if inWord { tokens.append(current) }
        return tokens
    }

    /// `path` with symbolic links resolved (`/usr/bin/python3` → `/usr/bin/python3.11`), as `/proc/PID/exe`
    /// shows it; unchanged when it does not exist.
    static func resolved(_ path: String) -> String {
        guard let real = realpath(path, nil) else { return path }
        defer { free(real) }
        return String(cString: real)
    }

    /// Whether deciding for this program and operation needs the key's label and id.
    func needsKeyFacts(_ peer: PeerProcess, _ operation: KeyOperation) -> Bool {
        files.contains { file in file.firstMatch(peer, operation, nil) == nil }
    }

    /// The decision for `peer` using a key for `operation`. `facts` are needed when `needsKeyFacts`;
    /// without them, a rule that names a key is taken not to match.
    func decide(_ peer: PeerProcess, _ operation: KeyOperation, _ facts: KeyFacts?) -> PolicyDecision {
        if let refused = files.first(where: \.refused) {
            return PolicyDecision(action: .deny, rule: nil, refusal: refused.problems.first)
        }
        var decision = PolicyDecision(action: .allow, rule: nil, refusal: nil)
        for file in files {
            guard let rule = file.decidingRule(peer, operation, facts) else { continue }
            // The administrator's file comes first: on a tie its rule is the one named.
            if decision.rule == nil || rule.action > decision.action {
                decision = PolicyDecision(action: rule.action, rule: rule, refusal: nil)
            }
        }
        return decision
    }

    /// The files and rules for `signet policy`.
    func report(recent: [PolicyReport.Use]) -> PolicyReport {
        PolicyReport(files: files.map { file in
                         PolicyReport.File(path: file.path, administrator: file.administrator,
                                           state: !file.present ? .absent : file.refused ? .refused : .loaded, problems: file.problems)
                     },
                     rules: rules.map(\.report), recent: recent)
    }
}

/// The client rules parser as the fuzz target (`Fuzz/Sources/FuzzClientRules`) reaches it: a `clients` file's
/// text, loaded as `ClientPolicy.loadFile` does after its checks, and what `signet policy` would show of it.
public enum ClientRulesParser {
    /// The rules of `text` read as the user's file `file`, and their problems, as `signet policy` shows them.
    /// A file with any problem has no rules in force (it is refused as a whole).
    public static func report(_ text: String, file: String) -> PolicyReport {
        let (rules, problems) = ClientPolicy.parse(text, file: file)
        let loaded = ClientPolicyFile(path: file, administrator: false, present: true, rules: problems.isEmpty ? rules : [], problems: problems)
        return ClientPolicy(files: [loaded]).report(recent: [])
    }
}
