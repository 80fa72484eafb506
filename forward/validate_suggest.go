package forward

import (
	"strconv"
	"strings"
)

// Suggest is suggest for the command line's own words (a --kind, a
// service named as an argument): "" or the quoted candidates closest to
// word, joined with "or".
func Suggest(word string, candidates []string) string { return suggest(word, candidates) }

// SuggestService is Suggest among the catalog's services.
func SuggestService(word string) string { return suggest(word, serviceNames()) }

// suggest returns the candidates closest to word, quoted and joined with
// "or", or "" when none is close. Close means a typo away (a small edit
// distance), or else containing one another ("minecraft" for
// "minecraft-java").
func suggest(word string, candidates []string) string {
	w := strings.ToLower(strings.TrimSpace(word))
	if w == "" || len(w) > 64 {
		return ""
	}
	limit := editLimit(w)
	best := limit + 1
	var typo, sub []string
	for _, c := range candidates {
		switch d := editDistance(w, c); {
		case d > limit:
		case d < best:
			best, typo = d, []string{strconv.Quote(c)}
		case d == best:
			typo = append(typo, strconv.Quote(c))
		}
		if len(w) >= 3 && (strings.Contains(c, w) || strings.Contains(w, c)) {
			sub = append(sub, strconv.Quote(c))
		}
	}
	if len(typo) == 0 {
		typo = sub
	}
	return strings.Join(typo[:min(len(typo), 3)], " or ")
}

// editLimit is how many edits still look like a typo of a word this long.
func editLimit(w string) int { return max(1, len(w)/4) }

// editDistance is the optimal string alignment distance between a and b:
// insertions, deletions, substitutions and swaps of neighbours ("tpc" for
// "tcp") each count one. Bytes, not runes: keys and names are ASCII.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
