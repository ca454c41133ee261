/// Errors reading a streamed message.
public enum StreamError: Error, Equatable, CustomStringConvertible {
    case truncated
    case malformed(String)
    case tooLarge(String)
    case io(String)

    public var description: String {
        switch self {
        case .truncated: "the message ends too early (truncated)"
        case .malformed(let what): what
        case .tooLarge(let what): "\(what) is larger than Signet accepts"
        case .io(let what): what
        }
    }
}
