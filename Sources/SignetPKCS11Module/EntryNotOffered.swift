#if canImport(Glibc)
import Glibc
#endif
import CSignetPKCS11Front
import SignetPKCS11Front
import SignetAgentProtocol
import SignetCore


// MARK: Not offered

// Token and code administration is `signet`'s (so the lockout stays in one place); the module creates
// no objects, has no random generator, and offers no symmetric or digest operation of its own.
func signet_C_InitToken(_ s: CK_SLOT_ID, _ p: UnsafeMutablePointer<UInt8>?, _ l: CK_ULONG, _ label: UnsafeMutablePointer<UInt8>?) -> CK_RV { notSupported() }
func signet_C_InitPIN(_ s: CK_SESSION_HANDLE, _ p: UnsafeMutablePointer<UInt8>?, _ l: CK_ULONG) -> CK_RV { notSupported() }
func signet_C_SetPIN(_ s: CK_SESSION_HANDLE, _ o: UnsafeMutablePointer<UInt8>?, _ ol: CK_ULONG, _ n: UnsafeMutablePointer<UInt8>?, _ nl: CK_ULONG) -> CK_RV { notSupported() }
func signet_C_GetOperationState(_ s: CK_SESSION_HANDLE, _ p: UnsafeMutablePointer<UInt8>?, _ l: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV { notSupported() }
func signet_C_SetOperationState(_ s: CK_SESSION_HANDLE, _ p: UnsafeMutablePointer<UInt8>?, _ l: CK_ULONG, _ e: CK_OBJECT_HANDLE, _ a: CK_OBJECT_HANDLE) -> CK_RV { notSupported() }
func signet_C_CreateObject(_ s: CK_SESSION_HANDLE, _ t: UnsafeMutablePointer<CK_ATTRIBUTE>?, _ c: CK_ULONG, _ o: UnsafeMutablePointer<CK_OBJECT_HANDLE>?) -> CK_RV { notSupported() }
func signet_C_CopyObject(_ s: CK_SESSION_HANDLE, _ o: CK_OBJECT_HANDLE, _ t: UnsafeMutablePointer<CK_ATTRIBUTE>?, _ c: CK_ULONG, _ n: UnsafeMutablePointer<CK_OBJECT_HANDLE>?) -> CK_RV { notSupported() }
func signet_C_SetAttributeValue(_ s: CK_SESSION_HANDLE, _ o: CK_OBJECT_HANDLE, _ t: UnsafeMutablePointer<CK_ATTRIBUTE>?, _ c: CK_ULONG) -> CK_RV { notSupported() }
func signet_C_EncryptInit(_ s: CK_SESSION_HANDLE, _ m: UnsafeMutablePointer<CK_MECHANISM>?, _ k: CK_OBJECT_HANDLE) -> CK_RV { notSupported() }
func signet_C_Encrypt(_ s: CK_SESSION_HANDLE, _ d: UnsafeMutablePointer<UInt8>?, _ dl: CK_ULONG, _ e: UnsafeMutablePointer<UInt8>?, _ el: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV { notSupported() }
func signet_C_EncryptUpdate(_ s: CK_SESSION_HANDLE, _ d: UnsafeMutablePointer<UInt8>?, _ dl: CK_ULONG, _ e: UnsafeMutablePointer<UInt8>?, _ el: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV { notSupported() }
func signet_C_EncryptFinal(_ s: CK_SESSION_HANDLE, _ e: UnsafeMutablePointer<UInt8>?, _ el: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV { notSupported() }
func signet_C_DecryptUpdate(_ s: CK_SESSION_HANDLE, _ d: UnsafeMutablePointer<UInt8>?, _ dl: CK_ULONG, _ e: UnsafeMutablePointer<UInt8>?, _ el: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV { notSupported() }
func signet_C_DecryptFinal(_ s: CK_SESSION_HANDLE, _ e: UnsafeMutablePointer<UInt8>?, _ el: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV { notSupported() }
func signet_C_DigestInit(_ s: CK_SESSION_HANDLE, _ m: UnsafeMutablePointer<CK_MECHANISM>?) -> CK_RV { notSupported() }
func signet_C_Digest(_ s: CK_SESSION_HANDLE, _ d: UnsafeMutablePointer<UInt8>?, _ dl: CK_ULONG, _ e: UnsafeMutablePointer<UInt8>?, _ el: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV { notSupported() }
func signet_C_DigestUpdate(_ s: CK_SESSION_HANDLE, _ d: UnsafeMutablePointer<UInt8>?, _ dl: CK_ULONG) -> CK_RV { notSupported() }
func signet_C_DigestKey(_ s: CK_SESSION_HANDLE, _ k: CK_OBJECT_HANDLE) -> CK_RV { notSupported() }
func signet_C_DigestFinal(_ s: CK_SESSION_HANDLE, _ e: UnsafeMutablePointer<UInt8>?, _ el: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV { notSupported() }
func signet_C_SignRecoverInit(_ s: CK_SESSION_HANDLE, _ m: UnsafeMutablePointer<CK_MECHANISM>?, _ k: CK_OBJECT_HANDLE) -> CK_RV { notSupported() }
func signet_C_SignRecover(_ s: CK_SESSION_HANDLE, _ d: UnsafeMutablePointer<UInt8>?, _ dl: CK_ULONG, _ e: UnsafeMutablePointer<UInt8>?, _ el: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV { notSupported() }
func signet_C_VerifyInit(_ s: CK_SESSION_HANDLE, _ m: UnsafeMutablePointer<CK_MECHANISM>?, _ k: CK_OBJECT_HANDLE) -> CK_RV { notSupported() }
func signet_C_Verify(_ s: CK_SESSION_HANDLE, _ d: UnsafeMutablePointer<UInt8>?, _ dl: CK_ULONG, _ e: UnsafeMutablePointer<UInt8>?, _ el: CK_ULONG) -> CK_RV { notSupported() }
func signet_C_VerifyUpdate(_ s: CK_SESSION_HANDLE, _ d: UnsafeMutablePointer<UInt8>?, _ dl: CK_ULONG) -> CK_RV { notSupported() }
func signet_C_VerifyFinal(_ s: CK_SESSION_HANDLE, _ e: UnsafeMutablePointer<UInt8>?, _ el: CK_ULONG) -> CK_RV { notSupported() }
func signet_C_VerifyRecoverInit(_ s: CK_SESSION_HANDLE, _ m: UnsafeMutablePointer<CK_MECHANISM>?, _ k: CK_OBJECT_HANDLE) -> CK_RV { notSupported() }
func signet_C_VerifyRecover(_ s: CK_SESSION_HANDLE, _ d: UnsafeMutablePointer<UInt8>?, _ dl: CK_ULONG, _ e: UnsafeMutablePointer<UInt8>?, _ el: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV { notSupported() }
func signet_C_DigestEncryptUpdate(_ s: CK_SESSION_HANDLE, _ d: UnsafeMutablePointer<UInt8>?, _ dl: CK_ULONG, _ e: UnsafeMutablePointer<UInt8>?, _ el: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV { notSupported() }
func signet_C_DecryptDigestUpdate(_ s: CK_SESSION_HANDLE, _ d: UnsafeMutablePointer<UInt8>?, _ dl: CK_ULONG, _ e: UnsafeMutablePointer<UInt8>?, _ el: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV { notSupported() }
func signet_C_SignEncryptUpdate(_ s: CK_SESSION_HANDLE, _ d: UnsafeMutablePointer<UInt8>?, _ dl: CK_ULONG, _ e: UnsafeMutablePointer<UInt8>?, _ el: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV { notSupported() }
func signet_C_DecryptVerifyUpdate(_ s: CK_SESSION_HANDLE, _ d: UnsafeMutablePointer<UInt8>?, _ dl: CK_ULONG, _ e: UnsafeMutablePointer<UInt8>?, _ el: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV { notSupported() }
func signet_C_GenerateKey(_ s: CK_SESSION_HANDLE, _ m: UnsafeMutablePointer<CK_MECHANISM>?, _ t: UnsafeMutablePointer<CK_ATTRIBUTE>?, _ c: CK_ULONG, _ k: UnsafeMutablePointer<CK_OBJECT_HANDLE>?) -> CK_RV { notSupported() }
func signet_C_GenerateKeyPair(_ s: CK_SESSION_HANDLE, _ m: UnsafeMutablePointer<CK_MECHANISM>?, _ pt: UnsafeMutablePointer<CK_ATTRIBUTE>?, _ pc: CK_ULONG, _ st: UnsafeMutablePointer<CK_ATTRIBUTE>?, _ sc: CK_ULONG, _ pk: UnsafeMutablePointer<CK_OBJECT_HANDLE>?, _ sk: UnsafeMutablePointer<CK_OBJECT_HANDLE>?) -> CK_RV { notSupported() }
func signet_C_WrapKey(_ s: CK_SESSION_HANDLE, _ m: UnsafeMutablePointer<CK_MECHANISM>?, _ w: CK_OBJECT_HANDLE, _ k: CK_OBJECT_HANDLE, _ o: UnsafeMutablePointer<UInt8>?, _ ol: UnsafeMutablePointer<CK_ULONG>?) -> CK_RV { notSupported() }
func signet_C_UnwrapKey(_ s: CK_SESSION_HANDLE, _ m: UnsafeMutablePointer<CK_MECHANISM>?, _ u: CK_OBJECT_HANDLE, _ w: UnsafeMutablePointer<UInt8>?, _ wl: CK_ULONG, _ t: UnsafeMutablePointer<CK_ATTRIBUTE>?, _ c: CK_ULONG, _ k: UnsafeMutablePointer<CK_OBJECT_HANDLE>?) -> CK_RV { notSupported() }
