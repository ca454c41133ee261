import SignetAgentClient
import SignetAgentProtocol
import SignetCore

/// What a failed (or partly failed) command means, as the exit status a mail program or script sees.
/// Each value has one meaning everywhere; docs/exit-status.md is the table people read.
public struct ExitStatus: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// Everything worked.
    public static let success = ExitStatus(rawValue: 0)
    /// Any failure without a status of its own (a file that cannot be read, a bad argument value, ...).
    public static let failure = ExitStatus(rawValue: 1)
    /// The access code (or a PKCS#12 file's password) is wrong.
    public static let wrongCode = ExitStatus(rawValue: 2)
    /// Signet has locked the token after wrong access codes, for a while.
    public static let locked = ExitStatus(rawValue: 3)
    /// The token itself refuses: its final try would be spent, or it is blocked.
    public static let tokenRefuses = ExitStatus(rawValue: 4)
    /// The token was not presented in time, or was removed during the operation.
    public static let tokenAbsent = ExitStatus(rawValue: 5)
    /// The token is locked (no access code was given for it) or nothing is visible until it is unlocked.
    public static let notUnlocked = ExitStatus(rawValue: 6)
    /// The token failed or refused the operation (not the message's fault).
    public static let tokenFailed = ExitStatus(rawValue: 7)
    /// Not an S/MIME or CMS message, or damaged beyond reading.
    public static let malformed = ExitStatus(rawValue: 10)
    /// Encrypted, but to none of the certificates on your tokens.
    public static let notForYou = ExitStatus(rawValue: 11)
    /// Addressed to you, but the message is damaged (a token failure is not: that is `tokenAbsent`,
    /// `notUnlocked` or `tokenFailed`).
    public static let damaged = ExitStatus(rawValue: 12)
    /// A signature does not match the content.
    public static let badSignature = ExitStatus(rawValue: 13)
    /// The signature matches, but the signer is not trusted, expired, not yet valid or revoked.
    public static let untrusted = ExitStatus(rawValue: 14)
    /// An algorithm Signet refuses (SHA-1 signatures) or does not know.
    public static let unsupported = ExitStatus(rawValue: 15)
    /// The signature is good and trusted, but the message's From: or Date: disagrees with it.
    public static let headerMismatch = ExitStatus(rawValue: 16)

    /// The status for an agent error code: the token's state when the code says which, else `failure`.
    public init(_ code: AgentErrorCode?) {
        switch code {
        case .tokenAbsent?, .noToken?, .tokenRemoved?: self = .tokenAbsent
        case .notUnlocked?: self = .notUnlocked
        case .tokenFailure?, .keyUsageNotPermitted?, .mechanismInvalid?: self = .tokenFailed
        default: self = .failure
        }
    }

    /// The more serious of two outcomes of opening a message (`success` is the least).
    public static func worse(_ a: ExitStatus, _ b: ExitStatus) -> ExitStatus {
        let order: [ExitStatus] = [.success, .headerMismatch, .untrusted, .unsupported, .badSignature, .damaged, .notForYou, .malformed]
        return (order.firstIndex(of: a) ?? 99) >= (order.firstIndex(of: b) ?? 99) ? a : b
    }

    public var description: String { "\(rawValue)" }
}

/// A failure a person can act on: what it means (`code`, also the exit status), a message that
/// says what to do next, and the underlying error when there is one. The front end prints it once,
/// at the top, as "Error: <message>"; nothing prints it where it is made, so a caller that
/// recovers from it (`try?`, a fallback) shows nothing.
public struct SignetError: Error, CustomStringConvertible {
    public var code: ExitStatus
    public var message: String
    /// What went wrong underneath (an agent, OpenSSL or file error), for logs and tests.
    public var cause: (any Error)?

    public init(_ code: ExitStatus = .failure, _ message: String, cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    /// The command line's spelling: a message and a bare exit status.
    public init(description: String, exitCode: Int32 = 1) {
        self.init(ExitStatus(rawValue: exitCode), description)
    }

    /// An agent failure, with the status its code means; the agent's message already says what to do.
    /// The message is one line whose controls are made visible (`Console.safe`), newlines included: it
    /// carries token labels, URIs and program paths, and `exit(reporting:)` keeps the newlines of a
    /// message's own lines, so a label's newline must not reach it raw (an agent escapes them too).
    public init(_ error: AgentClientError) {
        self.init(ExitStatus(error.code), Console.safe(error.description), cause: error)
    }

    /// The agent answered with a response of the wrong kind (a protocol mismatch between versions).
    public static let unexpectedAnswer = SignetError(.failure, "unexpected answer from the agent")

    public var description: String { message }
    /// The exit status as a number.
    public var exitCode: Int32 { code.rawValue }
}

extension AgentClient {
    /// One request, its failure as a `SignetError` (the exit status the agent's error code means).
    /// - Throws: `SignetError` with the agent's message.
    public func request(_ request: AgentRequest) throws(SignetError) -> AgentResponse {
        do throws(AgentClientError) {
            return try call(request)
        } catch {
            throw SignetError(error)
        }
    }
}

/// Connecting to the agent for a mail or enrollment workflow.
public enum AgentConnection {
    /// Connects to the agent, starting it when none runs and `start` is true, and tells it where this
    /// process can be asked for a code (`CallerEnvironment`: pipelined behind the hello, no round trip).
    /// - Throws: `SignetError` (`tokenAbsent`, ... as the agent's code says, else `failure`).
    public static func open(start: Bool = true) throws(SignetError) -> AgentClient {
        do throws(AgentClientError) {
            return try AgentLauncher.connect(start: start, environment: CallerEnvironment.current())
        } catch {
            throw SignetError(error)
        }
    }
}
