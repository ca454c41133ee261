import ArgumentParser
import SignetAgentProtocol
import SignetCore

/// `signet readers`: smart-card readers, whether a card is in each, its ATR,
/// as the agent (which alone loads pcsc-lite) sees them.
struct ReadersCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "readers",
        abstract: "List smart-card readers and the cards in them."
    )

    @OptionGroup var output: OutputOptions

    struct Entry: Codable {
        var name: String
        var cardPresent: Bool
        var state: [String]
        var atr: String?
        var transport: String
    }

    func run() throws {
        guard case .readers(let readers) = try Agent.call(.listReaders) else { throw CLIError(description: "unexpected answer from the agent") }
        let entries = readers.map {
            Entry(name: $0.name, cardPresent: $0.cardPresent, state: $0.state,
                  atr: $0.atr.map { Hex.encode($0, separator: " ", uppercase: true) }, transport: $0.transport)
        }
        if output.json { return try JSONOutput.print(entries) }
        if entries.isEmpty {
            print("No smart-card readers are connected. Plug in a reader or token; for NFC, connect the NFC reader.")
            return
        }
        for entry in entries {
            print(Console.safe(entry.name))
            print("  transport: \(entry.transport)")
            print("  card:      \(entry.cardPresent ? "present" : "none — insert it or tap it on the reader")")
            if entry.state.contains("mute") { print("  state:     the card does not answer; take it out and insert it again") }
            if let atr = entry.atr { print("  ATR:       \(atr)") }
        }
    }
}
