package termwidth

import "testing"

// The ambiguous characters ("…", "°", Greek, box drawing) take two
// columns in a CJK locale's terminal, one elsewhere; the Arabic number
// signs, format characters that are drawn, one (as glibc's wcwidth).
func TestColumns(t *testing.T) {
	for s, want := range map[string][2]int{ // {elsewhere, CJK}
		"…":                        {1, 2},
		"20°C ±1":                  {7, 9},
		"αβγ":                      {3, 6},
		"Ошибка":                   {6, 12},
		"─┼─":                      {3, 6},
		"接続":                       {4, 4},
		"🙂":                        {2, 2},
		"\u0600\u0605\u06dd\u08e2": {4, 4},
		"\u070f\U000110bd":         {2, 2},
		"e\u0301":                  {1, 1}, // combining, and ambiguous: none
		"a\u200bb":                 {2, 2}, // a zero-width space: none
		"\u00ad":                   {1, 1},
	} {
		for i, c := range []Columns{{}, {CJK: true}} {
			if got := c.String(s); got != want[i] {
				t.Errorf("%+v.String(%q) = %d, want %d", c, s, got, want[i])
			}
		}
	}
}

// The locale says whether ambiguous characters are wide: in Chinese,
// Japanese and Korean ones, LC_ALL before LC_CTYPE before LANG.
func TestForLocale(t *testing.T) {
	for _, c := range []struct {
		all, ctype, lang string
		cjk              bool
	}{
		{"", "", "", false},
		{"", "", "C.UTF-8", false},
		{"", "", "en_US.UTF-8", false},
		{"", "", "el_GR.UTF-8", false},
		{"", "", "ja_JP.UTF-8", true},
		{"", "", "zh_CN.GB18030", true},
		{"", "", "ko_KR.eucKR", true},
		{"", "", "zh_TW.UTF-8@cjk_narrow", false},
		{"", "ja_JP.UTF-8", "en_US.UTF-8", true},
		{"C", "ja_JP.UTF-8", "ja_JP.UTF-8", false},
		{"", "", "jav_ID.UTF-8", false},
	} {
		env := map[string]string{"LC_ALL": c.all, "LC_CTYPE": c.ctype, "LANG": c.lang}
		if got := ForLocale(func(k string) string { return env[k] }).CJK; got != c.cjk {
			t.Errorf("%v: CJK %v, want %v", env, got, c.cjk)
		}
	}
}
