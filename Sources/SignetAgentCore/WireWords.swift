import SignetAccessCode
import SignetAgentProtocol

extension AccessOutcome {
    /// The wire form of an access-code result, with its words.
    init(_ result: AccessResult, role: CodeRole = .user) {
        let message = result.message(role: role)
        switch result {
        case .unlocked: self.init(kind: .unlocked, message: message)
        case .alreadyUnlocked: self.init(kind: .alreadyUnlocked, message: message)
        case .wrongCode(let left, _, _): self.init(kind: .wrongCode, triesLeft: UInt32(left), message: message)
        case .locked(let remaining, _, _): self.init(kind: .locked, triesLeft: 0, lockedSeconds: UInt32(remaining.seconds.rounded(.up)), message: message)
        case .cardFinalTry: self.init(kind: .cardFinalTry, message: message)
        case .cardBlocked: self.init(kind: .cardBlocked, message: message)
        case .invalidLength: self.init(kind: .invalidLength, message: message)
        case .notPresented: self.init(kind: .notPresented, message: message)
        case .failed(_, let left): self.init(kind: .failed, triesLeft: UInt32(left), message: message)
        case .ledgerDamaged: self.init(kind: .ledgerDamaged, message: message)
        }
    }
}

extension CardRetryState {
    /// The token's own counter in words.
    var words: String {
        switch self {
        case .unknown: "not reported"
        case .triesLeft(let n): n.map { "\($0) tries left" } ?? "ok"
        case .countLow: "a wrong code was entered recently"
        case .finalTry: "final try"
        case .blocked: "blocked"
        }
    }

    /// The token's own counter as the protocol carries it. A card that counts its tries says one left
    /// (`63C1`) as its final try and none as blocked, whatever words it came in.
    var wire: CardCounter {
        switch self {
        case .unknown: .notReported
        case .triesLeft(let n?) where n <= 0: .blocked
        case .triesLeft(1?): .finalTry
        case .triesLeft(let n): .ok(triesLeft: n.map { UInt32(clamping: $0) })
        case .countLow: .countLow
        case .finalTry: .finalTry
        case .blocked: .blocked
        }
    }
}
