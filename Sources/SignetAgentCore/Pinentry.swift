#if canImport(Glibc)
import Glibc
#endif
import SignetCore

/// Why a pinentry interaction ended without an answer.
enum PinentryFailure: Error, Sendable, Equatable {
    /// The person cancelled (`ERR 83886179`, code 99), or closed the window.
    case cancelled
    /// Nobody answered in time: pinentry's own timeout (`ERR 83886142`, code 62) or Signet's, after which
    /// the pinentry's process group was killed.
    case timedOut
    /// The terminal could not be used ("Inappropriate ioctl for device": no tty, or not a terminal).
    case noTerminal(String)
    /// The program could not be started, died, or spoke something that is not Assuan.
    case failed(String)
}

/// One pinentry program, run for one prompt and spoken to in Assuan (GnuPG's pinentry protocol).
///
/// The program runs in its own process group with an environment of the validated display variables
/// and `PATH`, `LANG`, `TERM` only, and is killed (SIGKILL to its group) when it outlives Signet's limit.
/// What it sends back passes through a buffer that is wiped after every line; `getPin` undoes the `%XX`
/// escapes of the `D` lines and joins them straight into a `SecretBytes`, never a `String`.
final class PinentrySession {
    let program: String
    let pid: pid_t
    private let process: Subprocess
    private let input: Int32  // the pinentry's standard input: our commands
    private let output: Int32  // its standard output: the answers
    private let timeout: Double
    /// Received bytes not yet consumed; wiped as lines are consumed and when the session ends.
    private let pending = UnsafeMutableRawBufferPointer.allocate(byteCount: PinentrySession.lineLimit * 2, alignment: 16)
    private var pendingCount = 0
    private var ended = false

    /// Assuan's line limit, in bytes, newline included.
    static let lineLimit = 1000
    /// GnuPG error codes (the low 16 bits of an `ERR` code; the high bits name the source).
    static let canceledCode: UInt32 = 99, timeoutCode: UInt32 = 62, notConfirmedCode: UInt32 = 114

    /// Starts `program` and reads its greeting.
    /// - Parameters:
    ///   - environment: the variables the program gets (`ClientEnvironment.pinentryVariables`).
    ///   - timeout: seconds a person has for each question; Signet kills the program 2 s after.
    /// - Throws: `PinentryFailure.failed` when it cannot be started or does not greet.
    init(program: String, environment: [String], timeout: Double) throws(PinentryFailure) {
        self.program = program
        self.timeout = timeout
        _ = mlock(pending.baseAddress, pending.count)
        var toChild: [Int32] = [-1, -1], fromChild: [Int32] = [-1, -1]
        guard pipe(&toChild) == 0 else { throw .failed("pipe: \(System.describe(errno))") }
        guard pipe(&fromChild) == 0 else {
            close(toChild[0]); close(toChild[1])
            throw .failed("pipe: \(System.describe(errno))")
        }
        // Close-on-exec, so no other program the agent starts holds them (the pinentry gets copies as 0 and 1).
        for fd in toChild + fromChild { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        // Its own process group (killed whole at the end), no signal blocked or ignored as in the agent.
        let process: Subprocess
        do throws(SystemError) {
            process = try Subprocess(program, environment: environment, standardInput: .descriptor(toChild[0]),
                                     standardOutput: .descriptor(fromChild[1]), standardError: .null, group: .processGroup,
                                     defaultSignals: [SIGPIPE, SIGTERM, SIGINT, SIGHUP])
        } catch {
            close(toChild[0]); close(fromChild[1]); close(toChild[1]); close(fromChild[0])
            pending.deallocate()
            throw .failed("\(program) could not be started: \(error.reason)")
        }
        close(toChild[0]); close(fromChild[1])
        self.process = process
        pid = process.pid
        input = toChild[1]
        output = fromChild[0]
        // The greeting: a GUI pinentry may take a few seconds to start.
        do throws(PinentryFailure) {
            try expectOK(deadline: MonotonicClock.seconds() + 15)
        } catch {
            end()
            throw error == .timedOut ? .failed("\(program) did not greet within 15 s") : error
        }
    }

    deinit {
        end()
        pending.deallocate()
    }

    /// Says goodbye, then kills the program's whole group (helpers it started included) and reaps it.
    func end() {
        guard !ended else { return }
        ended = true
        _ = try? write("BYE")
        close(input)
        // A moment to leave by itself, then its group is killed (helpers it started) and it is reaped.
        _ = try? process.wait(timeout: 0.3, killingGroup: true)
        close(output)
        SecretBytes.wipe(pending)
        pendingCount = 0
    }

    // MARK: Commands

    /// Sends `command` with `argument` escaped (`%`, CR, LF and other control bytes as `%XX`), cut to fit
    /// Assuan's line limit, and waits for `OK`.
    /// - Parameter optional: an `ERR` answer is ignored (an option this pinentry does not know).
    func set(_ command: String, _ argument: String? = nil, optional: Bool = false) throws(PinentryFailure) {
        try write(PinentrySession.line(command, argument))
        do throws(PinentryFailure) {
            try expectOK(deadline: MonotonicClock.seconds() + 10)
        } catch {
            guard optional, case .failed = error else { throw error }
        }
    }

    /// Asks for a code: `GETPIN`, the `D` lines joined and unescaped into a zeroing buffer.
    /// - Throws: `.cancelled`, `.timedOut`, `.noTerminal`, `.failed`.
    func getPin() throws(PinentryFailure) -> SecretBytes {
        try write("GETPIN")
        var code = SecretBytes()
        var overflow = false
        try answer(deadline: MonotonicClock.seconds() + timeout + 2) { line in
            // "D " then the escaped data; a code may come in several D lines (Assuan's line limit).
            var index = 2
            while index < line.count {
                var byte = line[index]
                if byte == UInt8(ascii: "%"), index + 2 < line.count, let high = PinentrySession.hex(line[index + 1]),
                   let low = PinentrySession.hex(line[index + 2]) {
                    byte = high << 4 | low
                    index += 2
                }
                if !code.append(byte) { overflow = true }
                index += 1
            }
        }
        guard !overflow else { throw .failed("the code is longer than \(SecretBytes.maximumCount) bytes") }
        return code
    }

    /// Shows the description with one button (`MESSAGE`) until it is dismissed.
    func message() throws(PinentryFailure) {
        try write("MESSAGE")
        try answer(deadline: MonotonicClock.seconds() + timeout + 2) { _ in }
    }

    /// `CONFIRM`: true for OK, false for the not-OK button (`ERR` code 114).
    /// - Throws: `.cancelled` for the cancel button, Escape or a closed window; `.timedOut`; `.failed`.
    func confirm() throws(PinentryFailure) -> Bool {
        try write("CONFIRM")
        do throws(PinentryFailure) {
            try answer(deadline: MonotonicClock.seconds() + timeout + 2) { _ in }
            return true
        } catch {
            if case .failed(let text) = error, let code = text.split(separator: " ").dropFirst().first.flatMap({ UInt32($0) }),
               code & 0xFFFF == PinentrySession.notConfirmedCode { return false }
            throw error
        }
    }

    // MARK: Assuan

    /// `COMMAND argument` with the argument escaped, at most `lineLimit - 1` bytes (cut at a character).
    static func line(_ command: String, _ argument: String?) -> String {
        guard let argument else { return command }
        let digits = Array("0123456789ABCDEF".utf8)
        var bytes = Array((command + " ").utf8)
        for character in argument {
            var piece: [UInt8] = []
            for byte in String(character).utf8 {
                if byte == UInt8(ascii: "%") || byte < 0x20 || byte == 0x7F {
                    piece += [UInt8(ascii: "%"), digits[Int(byte >> 4)], digits[Int(byte & 15)]]
                } else {
                    piece.append(byte)
                }
            }
            // A whole character or none: a cut never splits one.
            guard bytes.count + piece.count <= lineLimit - 1 else { break }
            bytes += piece
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func hex(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        default: nil
        }
    }

    private func write(_ line: String) throws(PinentryFailure) {
        var bytes = Array((line + "\n").utf8)
        defer { for index in bytes.indices { bytes[index] = 0 } }
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { raw in System.retrying { Glibc.write(input, raw.baseAddress! + offset, raw.count - offset) } }
            guard n > 0 else { throw .failed("\(program) stopped reading (it may have died)") }
            offset += n
        }
    }

    private func expectOK(deadline: Double) throws(PinentryFailure) {
        try answer(deadline: deadline) { _ in }
    }

    /// Reads lines up to `OK` or `ERR`, handing each `D` line (raw, escaped) to `data`; status and
    /// comment lines are skipped. Past `deadline` the program's group is killed.
    private func answer(deadline: Double, data: (UnsafeRawBufferPointer) -> Void) throws(PinentryFailure) {
        while true {
            let outcome = try nextLine(deadline: deadline) { (line) -> Result<Bool, PinentryFailure> in
                func starts(_ word: String) -> Bool {
                    let bytes = Array(word.utf8)
                    return line.count >= bytes.count && zip(line, bytes).allSatisfy { $0 == $1 }
                        && (line.count == bytes.count || line[bytes.count] == UInt8(ascii: " "))
                }
                if starts("D") { data(line); return .success(false) }
                if starts("OK") { return .success(true) }
                if starts("S") || starts("#") || line.isEmpty { return .success(false) }
                // Everything but D lines is plain text (never a code).
                let text = String(decoding: line, as: UTF8.self)
                if starts("ERR") { return .failure(PinentrySession.classify(text)) }
                if starts("INQUIRE") { return .failure(.failed("\(program) asked for more (\(text.prefix(40))); Signet answers no inquiries")) }
                return .failure(.failed("\(program) said something that is not Assuan: \(Console.safe(String(text.prefix(60))))"))
            }
            switch outcome {
            case .success(true): return
            case .success(false): continue
            case .failure(let failure): throw failure
            }
        }
    }

    /// Sorts an `ERR` line into cancel, timeout, no terminal, or another failure (keeping its text).
    static func classify(_ line: String) -> PinentryFailure {
        let words = line.split(separator: " ", maxSplits: 2)
        let code = words.count > 1 ? UInt32(words[1]) ?? 0 : 0
        let text = words.count > 2 ? String(words[2]) : ""
        if line.contains("Inappropriate ioctl") { return .noTerminal(Console.safe(text)) }
        switch code & 0xFFFF {
        case canceledCode: return .cancelled
        case timeoutCode: return .timedOut
        default: return .failed(Console.safe(line))
        }
    }

    /// The next line, without its newline, lent to `body`; its bytes are wiped once `body` returns.
    private func nextLine<R>(deadline: Double, _ body: (UnsafeRawBufferPointer) -> R) throws(PinentryFailure) -> R {
        while true {
            if let newline = pending[0..<pendingCount].firstIndex(of: 0x0A) {
                let result = body(UnsafeRawBufferPointer(rebasing: pending[0..<newline]))
                let rest = pendingCount - (newline + 1)
                if rest > 0 { pending.baseAddress!.copyMemory(from: pending.baseAddress! + newline + 1, byteCount: rest) }
                SecretBytes.wipe(UnsafeMutableRawBufferPointer(rebasing: pending[rest..<pendingCount]))
                pendingCount = rest
                return result
            }
            guard pendingCount < PinentrySession.lineLimit else {
                throw .failed("\(program) sent a line longer than Assuan's \(PinentrySession.lineLimit) bytes")
            }
            let left = deadline - MonotonicClock.seconds()
            guard left > 0 else {
                process.kill(SIGKILL)
                throw .timedOut
            }
            guard (try? System.poll(output, events: Int16(POLLIN), timeout: min(left, 1000))) == true else { continue }
            let n = System.retrying { read(output, pending.baseAddress! + pendingCount, pending.count - pendingCount) }
            if n < 0 && errno == EAGAIN { continue }
            guard n > 0 else { throw .failed("\(program) ended without an answer") }
            pendingCount += n
        }
    }
}
