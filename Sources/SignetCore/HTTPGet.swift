#if canImport(Glibc)
import Glibc
#endif

/// A plain HTTP/1.0 GET for CRL distribution points, with every choice a caller needs to bound what a
/// certificate's URL can make it do: it follows no redirect, connects only to the addresses it checked
/// (so a name cannot resolve to another address between the check and the connection), refuses loopback,
/// link-local and unspecified addresses unless allowed, ignores proxy variables, and stops at a deadline
/// and at a size limit.
public enum HTTPGet {
    /// Why a fetch did not return a body.
    public struct Failure: Error, Equatable, CustomStringConvertible {
        public var description: String
        public init(_ description: String) { self.description = description }
    }

    /// The body of `url` (`http://host[:port]/path`) when it answers 200.
    /// - Parameters:
    ///   - allowLocal: connect to loopback and link-local addresses too (a test server, a CRL cache on the host).
    ///   - deadline: `MonotonicClock.seconds()` by which the whole exchange must be done.
    ///   - limit: the largest body accepted.
    /// - Throws: `Failure` for another scheme, a name that does not resolve, an address refused by `allowLocal`,
    ///   a connection that fails or times out, an answer other than 200 (a redirect is refused, naming its target),
    ///   or a body over `limit`.
    public static func fetch(_ url: String, allowLocal: Bool, deadline: Double, limit: Int) throws(Failure) -> [UInt8] {
        let target = try Target(url)
        let addresses = try resolve(target)
        var refused: [String] = []
        var lastError: Failure?
        for address in addresses {
            if !allowLocal, let kind = address.localKind {
                refused.append("\(address.text) is a \(kind) address")
                continue
            }
            do {
                let answer = try exchange(address, request: target.request, deadline: deadline, limit: limit)
                return try body(of: answer, limit: limit)
            } catch {
                // An answer (404, a redirect) is final; only a failed connection tries the next address.
                if case .answered(let failure) = error { throw failure }
                if case .connection(let failure) = error { lastError = failure }
            }
        }
        if let lastError { throw lastError }
        throw Failure("\(target.host) resolves only to addresses Signet does not fetch from (\(refused.joined(separator: "; "))); "
                      + "set crl-fetch-local = yes in the configuration to allow them")
    }

    /// The parts of an `http://` URL a request needs.
    struct Target {
        var host: String
        var port: String
        var authority: String
        var path: String

        init(_ url: String) throws(Failure) {
            guard url.lowercased().hasPrefix("http://") else { throw Failure("only http:// addresses are fetched") }
            let rest = url.dropFirst("http://".count)
            let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? rest.endIndex
            authority = String(rest[..<authorityEnd])
            var path = String(rest[authorityEnd...].prefix { $0 != "#" })
            if path.isEmpty || path.first == "?" { path = "/" + path }
            self.path = path
            guard !authority.isEmpty, !authority.contains("@"),
                  !url.unicodeScalars.contains(where: { $0.value <= 0x20 || $0.value >= 0x7F }) else {
                throw Failure("the address is not a plain http://host/path URL")
            }
            if authority.hasPrefix("[") {
                guard let close = authority.firstIndex(of: "]") else { throw Failure("the address has an unclosed [") }
                host = String(authority[authority.index(after: authority.startIndex)..<close])
                let after = authority[authority.index(after: close)...]
                port = after.hasPrefix(":") ? String(after.dropFirst()) : "80"
            } else if let colon = authority.lastIndex(of: ":") {
                host = String(authority[..<colon])
                port = String(authority[authority.index(after: colon)...])
            } else {
                host = authority
                port = "80"
            }
            guard !host.isEmpty, let number = Int(port), (1...65535).contains(number) else { throw Failure("the address has no usable host and port") }
        }

        var request: [UInt8] {
            Array("GET \(path) HTTP/1.0\r\nHost: \(authority)\r\nAccept: application/pkix-crl\r\nConnection: close\r\n\r\n".utf8)
        }
    }

    /// One resolved address.
    struct Address {
        var family: Int32
        var bytes: [UInt8]
        var storage: sockaddr_storage
        var length: socklen_t

        var text: String {
            var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            return bytes.withUnsafeBytes { raw in
                inet_ntop(family, raw.baseAddress, &buffer, socklen_t(buffer.count)) != nil
                    ? String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : "?"
            }
        }

        /// "loopback", "link-local" or "unspecified" when the address is one, else nil.
        var localKind: String? {
            var v4 = family == AF_INET ? bytes : nil
            if family == AF_INET6 {
                if bytes == [UInt8](repeating: 0, count: 15) + [1] { return "loopback" }
                if bytes.allSatisfy({ $0 == 0 }) { return "unspecified" }
                if bytes[0] == 0xFE && bytes[1] & 0xC0 == 0x80 { return "link-local" }
                if bytes.prefix(10).allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF { v4 = Array(bytes.suffix(4)) }
            }
            guard let v4 else { return nil }
            if v4[0] == 127 { return "loopback" }
            if v4[0] == 169 && v4[1] == 254 { return "link-local" }
            if v4[0] == 0 { return "unspecified" }
            return nil
        }
    }

    static func resolve(_ target: Target) throws(Failure) -> [Address] {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(target.host, target.port, &hints, &list)
        guard status == 0 else { throw Failure("\(target.host) does not resolve (\(String(cString: gai_strerror(status))))") }
        defer { freeaddrinfo(list) }
        var addresses: [Address] = []
        var entry = list
        while let info = entry?.pointee {
            defer { entry = info.ai_next }
            guard let pointer = info.ai_addr, info.ai_family == AF_INET || info.ai_family == AF_INET6 else { continue }
            var storage = sockaddr_storage()
            withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: UnsafeRawBufferPointer(start: pointer, count: Int(info.ai_addrlen))) }
            let bytes: [UInt8] = info.ai_family == AF_INET
                ? pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { withUnsafeBytes(of: $0.pointee.sin_addr) { Array($0) } }
                : pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { withUnsafeBytes(of: $0.pointee.sin6_addr) { Array($0) } }
            addresses.append(Address(family: info.ai_family, bytes: bytes, storage: storage, length: info.ai_addrlen))
        }
        guard !addresses.isEmpty else { throw Failure("\(target.host) has no IPv4 or IPv6 address") }
        return addresses
    }

    enum ExchangeError: Error {
        case connection(Failure)
        case answered(Failure)
    }

    /// Connects to `address`, sends `request` and reads the answer until the server closes (HTTP/1.0).
    static func exchange(_ address: Address, request: [UInt8], deadline: Double, limit: Int) throws(ExchangeError) -> [UInt8] {
        let fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .connection(Failure("cannot make a socket (errno \(errno))")) }
        defer { close(fd) }
        var storage = address.storage
        let connected = withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, address.length) } }
        if connected != 0 {
            guard errno == EINPROGRESS else { throw .connection(Failure("cannot connect to \(address.text): \(System.describe(errno))")) }
            try wait(fd, for: Int16(POLLOUT), until: deadline, doing: "connecting to \(address.text)")
            var error: Int32 = 0
            var size = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size)
            guard error == 0 else { throw .connection(Failure("cannot connect to \(address.text): \(System.describe(error))")) }
        }
        var sent = 0
        while sent < request.count {
            try wait(fd, for: Int16(POLLOUT), until: deadline, doing: "sending to \(address.text)")
            let n = request[sent...].withUnsafeBytes { raw in System.retrying { send(fd, raw.baseAddress, raw.count, Int32(MSG_NOSIGNAL)) } }
            if n < 0 && errno == EAGAIN { continue }
            guard n > 0 else { throw .connection(Failure("the connection to \(address.text) failed while sending")) }
            sent += n
        }
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16384)
        while true {
            try wait(fd, for: Int16(POLLIN), until: deadline, doing: "reading from \(address.text)")
            let n = System.retrying { recv(fd, &buffer, buffer.count, 0) }
            if n < 0 && errno == EAGAIN { continue }
            guard n >= 0 else { throw .connection(Failure("the connection to \(address.text) failed while reading")) }
            if n == 0 { return answer }
            answer += buffer[..<n]
            guard answer.count <= limit + 65536 else { throw .answered(Failure("the answer is larger than \(limit >> 20) MiB")) }
        }
    }

    static func wait(_ fd: Int32, for events: Int16, until deadline: Double, doing what: String) throws(ExchangeError) {
        let left = deadline - MonotonicClock.seconds()
        let ready: Bool
        do throws(SystemError) {
            ready = left > 0 ? try System.poll(fd, events: events, timeout: left) : false
        } catch {
            throw .connection(Failure("poll failed \(what)"))
        }
        guard ready else { throw .answered(Failure("timed out \(what)")) }
    }

    /// The body of a 200 answer; any other status (a redirect among them) is a failure that names it.
    static func body(of answer: [UInt8], limit: Int) throws(ExchangeError) -> [UInt8] {
        guard let end = answer.indices.first(where: { answer[$0...].starts(with: [13, 10, 13, 10]) }) else {
            throw .answered(Failure("the server's answer is not HTTP"))
        }
        let head = String(decoding: answer[..<end], as: UTF8.self).split(separator: "\r\n")
        let status = head.first?.split(separator: " ", maxSplits: 2) ?? []
        guard status.count >= 2, status[0].hasPrefix("HTTP/1."), let code = Int(status[1]) else {
            throw .answered(Failure("the server's answer is not HTTP"))
        }
        let reason = status.count > 2 ? " \(status[2])" : ""
        if (300..<400).contains(code) {
            let location = head.first { $0.lowercased().hasPrefix("location:") }.map { " to \($0.dropFirst("location:".count).trimmingSpaces())" } ?? ""
            throw .answered(Failure("the server redirects (\(code)\(reason))\(location); Signet does not follow redirects for CRLs"))
        }
        guard code == 200 else { throw .answered(Failure("the server answered \(code)\(reason)")) }
        let body = Array(answer[(end + 4)...])
        guard body.count <= limit else { throw .answered(Failure("the answer is larger than \(limit >> 20) MiB")) }
        return body
    }
}
