import SignetCore
import SignetOpenSSL

/// The CRLs `--fetch-crl` downloads for one message, within bounds: a certificate's distribution point is
/// a URL the sender chose, so fetching it tells the sender that (and when) the message was opened, and
/// makes the reader's machine send a request wherever the URL says. `MessageOpener` therefore fetches only
/// for a path already built to a trusted anchor (the URLs come from certificates a trusted CA issued),
/// and this fetcher refuses redirects and loopback or link-local addresses (unless `crl-fetch-local = yes`),
/// makes at most `maximumFetches` requests per message, and spends at most `totalSeconds` on them.
public final class CRLFetcher {
    /// Requests per message, over every signer and every certificate of their paths.
    public static let maximumFetches = 4
    /// Seconds for all of a message's requests together.
    public static let totalSeconds = 20.0
    /// Seconds for one request.
    public static let eachSeconds = 15.0

    /// Whether loopback and link-local addresses are fetched from (`crl-fetch-local = yes`).
    public let allowLocal: Bool
    private let limits: (fetches: Int, total: Double, each: Double)
    private var fetched: [String: RevocationList] = [:]
    private var requests = 0
    private var deadline: Double?

    /// - Parameters: the limits, the defaults above unless a test needs them small.
    public init(allowLocal: Bool, maximumFetches: Int = CRLFetcher.maximumFetches, totalSeconds: Double = CRLFetcher.totalSeconds,
                eachSeconds: Double = CRLFetcher.eachSeconds) {
        self.allowLocal = allowLocal
        limits = (maximumFetches, totalSeconds, eachSeconds)
    }

    /// The CRLs named by the certificates of `path` below its anchor (the last one), fetched once per URL.
    /// `note` gets one line for each URL that could not be fetched or was not, and why.
    public func lists(for path: [Certificate], note: (String) -> Void) -> [RevocationList] {
        var lists: [RevocationList] = []
        for url in path.dropLast().flatMap(\.crlDistributionPoints) {
            if let list = fetched[url] { lists.append(list); continue }
            guard requests < limits.fetches else {
                note("not fetched from \(url): Signet makes at most \(limits.fetches) CRL requests per message"); continue
            }
            let now = MonotonicClock.seconds()
            let end = deadline ?? now + limits.total
            deadline = end
            guard now < end else { note("not fetched from \(url): the \(DurationText.words(limits.total)) for fetching this message's CRLs are spent"); continue }
            requests += 1
            do {
                let body = try HTTPGet.fetch(url, allowLocal: allowLocal, deadline: min(end, now + limits.each), limit: RevocationList.maximumSize)
                let list = try RevocationList(bytes: body)
                fetched[url] = list
                lists.append(list)
            } catch {
                note("could not fetch \(url): \(error)")
            }
        }
        return lists
    }
}
