package names

import "github.com/mtibben/confusables"

// Skeleton returns the confusables skeleton (Unicode UTS #39) of a folded
// name: two names with the same skeleton look alike, such as "Anna" in
// Latin letters and "Аnna" with a Cyrillic А. Compare it after [Fold] has
// not matched, to say that two names differ only by look-alike characters
// (and case, spacing or diacritics).
func Skeleton(name string) string {
	return confusables.Skeleton(Fold(name))
}

// LookAlike reports whether a and b differ, even after [Fold], but have
// the same [Skeleton]: they differ only by characters that look alike,
// most often letters of another script.
func LookAlike(a, b string) bool {
	return Fold(a) != Fold(b) && Skeleton(a) == Skeleton(b)
}
