import ArgumentParser
import SignetAgentClient
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

    func run() throws {
        guard case .tokenDetails(let tokens, let failures) = try Agent.call(.tokenDetails) else {
            throw CLIError(description: "unexpected answer from the agent")
        }
        let listing = TokenReports.Listing(tokens: tokens, failures: failures)
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
            print("  access code:  \(token.userCode.words)")
            print("  admin code:   \(token.soCode.words)")
        }
    }
}
