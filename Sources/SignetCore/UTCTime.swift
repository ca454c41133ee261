#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Times as text, in UTC, without Foundation's formatters (which bring ICU into the
/// `signet` binary and cost about 1.3 ms at every start). Seconds are since 1970 (Unix time).
public enum UTCTime {
    /// `2026-11-22T10:15:30Z`; with `milliseconds`, `2026-11-22T10:15:30.123Z`;
    /// with `separator: " "` and `suffix: " UTC"`, `2026-11-22 10:15:30 UTC`.
    public static func format(_ seconds: Double, milliseconds: Bool = false, separator: String = "T", suffix: String = "Z") -> String {
        let whole = seconds.rounded(.down)
        var time = time_t(whole)
        var parts = tm()
        gmtime_r(&time, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        var text = "\(four(Int(parts.tm_year) + 1900))-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))"
        text += "\(separator)\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))"
        if milliseconds {
            let millis = min(999, Int((seconds - whole) * 1000))
            text += millis < 10 ? ".00\(millis)" : millis < 100 ? ".0\(millis)" : ".\(millis)"
        }
        return text + suffix
    }

    private static func four(_ year: Int) -> String {
        let digits = "\(year)"
        return digits.count >= 4 ? digits : String(repeating: "0", count: 4 - digits.count) + digits
    }

    /// Seconds since 1970 for a UTC calendar time; nil when a field is out of range.
    public static func seconds(year: Int, month: Int, day: Int, hour: Int = 0, minute: Int = 0, second: Int = 0) -> Double? {
        guard (1...12).contains(month), (1...daysIn(month, of: year)).contains(day),
              (0...23).contains(hour), (0...59).contains(minute), (0...60).contains(second) else { return nil }
        // Days from 1970-01-01 to the date (Howard Hinnant's days_from_civil).
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        let days = era * 146_097 + dayOfEra - 719_468
        return Double(days * 86_400 + hour * 3600 + minute * 60 + second)
    }

    private static func daysIn(_ month: Int, of year: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Parses `2026-01-27`, `2026-01-27T10:00:00Z`, `2026-01-27 10:00:00`, `2026-01-27T10:00`,
    /// with optional fractional seconds and a `Z` or `+01:00`/`-0500` offset (no offset: UTC).
    public static func parse(_ text: some StringProtocol) -> Double? {
        var scanner = Scanner(Array(text.utf8))
        guard let year = scanner.number(digits: 4), scanner.skip("-"), let month = scanner.number(digits: 2),
              scanner.skip("-"), let day = scanner.number(digits: 2) else { return nil }
        var hour = 0, minute = 0, second = 0, fraction = 0.0, offset = 0
        if scanner.skip("T") || scanner.skip("t") || scanner.skip(" ") {
            guard let h = scanner.number(digits: 2), scanner.skip(":"), let m = scanner.number(digits: 2) else { return nil }
            hour = h
            minute = m
            if scanner.skip(":") {
                guard let s = scanner.number(digits: 2) else { return nil }
                second = s
                if scanner.skip(".") || scanner.skip(",") {
                    var scale = 0.1
                    var any = false
                    while let digit = scanner.digit() { fraction += Double(digit) * scale; scale /= 10; any = true }
                    guard any else { return nil }
                }
            }
            if scanner.skip("Z") || scanner.skip("z") {
            } else if let sign = scanner.sign() {
                guard let h = scanner.number(digits: 2) else { return nil }
                _ = scanner.skip(":")
                guard let m = scanner.number(digits: 2), h <= 23, m <= 59 else { return nil }
                offset = sign * (h * 3600 + m * 60)
            }
        }
        guard scanner.atEnd, let base = seconds(year: year, month: month, day: day, hour: hour, minute: minute, second: second) else { return nil }
        return base + fraction - Double(offset)
    }

    /// Parses an RFC 5322 `Date:` value: `Tue, 27 Jan 2026 10:00:00 +0100`, with or without the day
    /// name and the seconds, two-digit years and the obsolete zone names (`GMT`, `EST`, ...).
    /// Comments in parentheses are ignored.
    public static func parseMailDate(_ text: some StringProtocol) -> Double? {
        var words: [Substring] = []
        var depth = 0
        var current = ""
        for character in text {
            if character == "(" { depth += 1; continue }
            if character == ")" { depth = max(0, depth - 1); continue }
            guard depth == 0 else { continue }
            if character == " " || character == "\t" || character == "\r" || character == "\n" || character == "," {
                if !current.isEmpty { words.append(Substring(current)); current = "" }
            } else {
                current.append(character)
            }
        }
        if !current.isEmpty { words.append(Substring(current)) }
        let dayNames = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        if let first = words.first, dayNames.contains(first.lowercased()) { words.removeFirst() }
        guard words.count == 5 else { return nil }
        let months = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
        func digits(_ word: Substring) -> Bool { !word.isEmpty && word.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 } }
        guard digits(words[0]), words[0].count <= 2, let day = Int(words[0]),
              let monthIndex = months.firstIndex(of: words[1].lowercased()),
              digits(words[2]), var year = Int(words[2]) else { return nil }
        if words[2].count == 2 { year += year < 50 ? 2000 : 1900 } else if words[2].count == 3 { year += 1900 } else if words[2].count != 4 { return nil }
        let clock = words[3].split(separator: ":", omittingEmptySubsequences: false)
        guard clock.count == 2 || clock.count == 3, clock.allSatisfy({ $0.count == 2 && digits($0) }),
              let hour = Int(clock[0]), let minute = Int(clock[1]) else { return nil }
        let second = clock.count == 3 ? Int(clock[2]) : 0
        guard let second, let offset = zoneOffset(words[4]),
              let base = seconds(year: year, month: monthIndex + 1, day: day, hour: hour, minute: minute, second: second) else { return nil }
        return base - Double(offset)
    }

    /// `+0100` → 3600; the RFC 5322 obsolete names; nil for anything else.
    private static func zoneOffset(_ zone: Substring) -> Int? {
        let named = ["ut": 0, "gmt": 0, "z": 0, "utc": 0, "est": -5, "edt": -4, "cst": -6, "cdt": -5, "mst": -7, "mdt": -6, "pst": -8, "pdt": -7]
        if let hours = named[zone.lowercased()] { return hours * 3600 }
        let bytes = Array(zone.utf8)
        guard bytes.count == 5, bytes[0] == UInt8(ascii: "+") || bytes[0] == UInt8(ascii: "-"),
              bytes[1...].allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        let digits = bytes[1...].map { Int($0) - 0x30 }
        let hours = digits[0] * 10 + digits[1], minutes = digits[2] * 10 + digits[3]
        guard hours <= 23, minutes <= 59 else { return nil }
        return (bytes[0] == UInt8(ascii: "-") ? -1 : 1) * (hours * 3600 + minutes * 60)
    }

    private struct Scanner {
        let bytes: [UInt8]
        var index = 0
        init(_ bytes: [UInt8]) { self.bytes = bytes }
        var atEnd: Bool { index == bytes.count }

        mutating func skip(_ character: Unicode.Scalar) -> Bool {
            guard index < bytes.count, bytes[index] == UInt8(ascii: character) else { return false }
            index += 1
            return true
        }

        mutating func digit() -> Int? {
            guard index < bytes.count, bytes[index] >= 0x30, bytes[index] <= 0x39 else { return nil }
            index += 1
            return Int(bytes[index - 1]) - 0x30
        }

        mutating func number(digits count: Int) -> Int? {
            var value = 0
            for _ in 0..<count {
                guard let digit = digit() else { return nil }
                value = value * 10 + digit
            }
            return value
        }

        mutating func sign() -> Int? {
            if skip("+") { return 1 }
            if skip("-") { return -1 }
            return nil
        }
    }
}
