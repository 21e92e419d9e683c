package replay

import (
	"strings"
	"unicode/utf8"
)

// messageLines splits a datagram into lines for a diff: the start line and
// header fields as they are (without CR), then the body's lines when it is
// text, else one line saying its size.
func messageLines(data []byte) []string {
	head, body := data, []byte(nil)
	if end := headerEnd(data); end >= 0 {
		head, body = data[:end], data[end:]
	}
	lines := strings.Split(strings.TrimRight(string(head), "\r\n"), "\n")
	for i := range lines {
		lines[i] = strings.TrimSuffix(lines[i], "\r")
	}
	if len(body) > 0 {
		lines = append(lines, "")
		if utf8.Valid(body) {
			for _, l := range strings.Split(strings.TrimRight(string(body), "\r\n"), "\n") {
				lines = append(lines, strings.TrimSuffix(l, "\r"))
			}
		} else {
			lines = append(lines, "[binary body]")
		}
	}
	return lines
}

// lineDiff returns a line diff of want and got: common lines prefixed with
// "  ", lines only in want with "- ", lines only in got with "+ ". It is a
// longest-common-subsequence diff, fine for the size of SIP messages.
func lineDiff(want, got []string) []string {
	n, m := len(want), len(got)
	// lcs[i][j] is the LCS length of want[i:] and got[j:].
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if want[i] == got[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out []string
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && want[i] == got[j]:
			out = append(out, "  "+want[i])
			i, j = i+1, j+1
		case i < n && (j == m || lcs[i+1][j] >= lcs[i][j+1]):
			out = append(out, "- "+want[i])
			i++
		default:
			out = append(out, "+ "+got[j])
			j++
		}
	}
	return out
}
