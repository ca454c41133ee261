import ArgumentParser
import SignetAgentProtocol
import SignetCore

/// `signet tokens`: every token the PKCS#11 modules see, as the agent (which
/// alone loads the modules) reads them, without logging in. Starts the agent
/// when none runs, as the other commands that need tokens do.
struct TokensCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokens",
        abstract: "List tokens with their PKCS#11 URI, identity and access-code state."
    )

    @OptionGroup var output: OutputOptions

    struct Entry: Codable {
        struct Module: Codable {
            var name: String
            var path: String
            var description: String
            var manufacturer: String
        }
        struct CodeState: Codable {
            var countLow: Bool
            var finalTry: Bool
            var locked: Bool
            var toBeChanged: Bool
            var protectedAuthenticationPath: Bool
            var minLength: Int?
            var maxLength: Int?
        }
        var uri: String
        var label: String
        var manufacturer: String
        var model: String
        var serial: String
        var software: Bool
        var slot: String
        var module: Module
        var flags: [String]
        var userCode: CodeState
        var soCode: CodeState
    }

    struct Listing: Codable {
        var tokens: [Entry]
        var moduleErrors: [String]
    }

    func run() throws {
        guard case .tokenDetails(let tokens, let failures) = try Agent.call(.tokenDetails) else {
            throw CLIError(description: "unexpected answer from the agent")
        }
        let listing = Listing(tokens: tokens.map(Self.entry), moduleErrors: failures.map { "\($0.path): \($0.reason)" })
        if output.json { return try JSONOutput.print(listing) }
        for problem in listing.moduleErrors { Console.error("warning: could not use PKCS#11 module \(Console.safe("\(problem)"))") }
        if listing.tokens.isEmpty {
            print("No tokens found. Insert your token or tap it on the reader; to try Signet without one, run `signet token init --software --label Test`.")
            return
        }
        for token in listing.tokens {
            print("\(Console.safe(token.label))\(token.software ? "  [SOFTWARE TOKEN — not for real keys]" : "")")
            print("  uri:          \(Console.safe(token.uri))")
            print("  manufacturer: \(Console.safe(token.manufacturer))")
            print("  model:        \(Console.safe(token.model))")
            print("  serial:       \(Console.safe(token.serial))")
            print("  module:       \(Console.safe(token.module.name)) (\(Console.safe(token.module.path)))")
            print("  access code:  \(Self.words(token.userCode))")
            print("  admin code:   \(Self.words(token.soCode))")
        }
    }

    static func entry(_ token: TokenDetail) -> Entry {
        func state(_ code: CodeFlags) -> Entry.CodeState {
            .init(countLow: code.countLow, finalTry: code.finalTry, locked: code.locked, toBeChanged: code.toBeChanged,
                  protectedAuthenticationPath: code.protectedAuthenticationPath,
                  minLength: code.minLength.map { Int($0) }, maxLength: code.maxLength.map { Int($0) })
        }
        let identity = token.entry
        return Entry(
            uri: identity.uri, label: identity.label, manufacturer: identity.manufacturer, model: identity.model, serial: identity.serial,
            software: identity.software, slot: token.slot,
            module: .init(name: token.module.name, path: token.module.path, description: token.module.description,
                          manufacturer: token.module.manufacturer),
            flags: token.flags, userCode: state(token.userCode), soCode: state(token.soCode)
        )
    }

    static func words(_ state: Entry.CodeState) -> String {
        if state.locked { return "BLOCKED on the token — unblock it with the administrator code or PUK" }
        var parts: [String] = []
        if state.finalTry { parts.append("final try left on the token") } else if state.countLow { parts.append("a wrong code was entered recently") }
        if state.toBeChanged { parts.append("must be changed") }
        if state.protectedAuthenticationPath { parts.append("entered on the reader's PIN pad") }
        if parts.isEmpty { parts.append("ok") }
        if let min = state.minLength, let max = state.maxLength { parts.append("\(min)–\(max) characters") }
        return parts.joined(separator: "; ")
    }
}
