package cli

func runHook(e *env) int { return 0 }
func runPush(e *env) int { return 0 }
func runWorker(e *env) int { return 0 }
func runStatus(e *env) int { return 0 }
func runWait(e *env) int { return 0 }
func runRetry(e *env) int { return 0 }
