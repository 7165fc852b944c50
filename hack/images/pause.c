/* The pod sandbox's "pause" process for the locally built image (hack/build-images.sh).
 *
 * It holds the pod's namespaces open and does nothing else: as PID 1 of the pod it reaps any
 * child re-parented to it, and it exits 0 on SIGTERM or SIGINT (what the kubelet and containerd
 * send when they stop the sandbox). Built with `gcc -static`, so the image needs no libc.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int signo)
{
    (void)signo;
    _exit(0);
}

static void reap(int signo)
{
    int saved = errno;
    (void)signo;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
    errno = saved;
}

static int handle(int signo, void (*handler)(int))
{
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = handler;
    action.sa_flags = signo == SIGCHLD ? SA_NOCLDSTOP | SA_RESTART : 0;
    sigemptyset(&action.sa_mask);
    return sigaction(signo, &action, NULL);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "-v") == 0) {
        puts("pause (podpreset, built from hack/images/pause.c)");
        return 0;
    }
    if (getpid() != 1) {
        fputs("pause: warning: not PID 1; re-parented children are reaped only by PID 1\n", stderr);
    }
    if (handle(SIGINT, stop) < 0 || handle(SIGTERM, stop) < 0 || handle(SIGCHLD, reap) < 0) {
        perror("pause: sigaction");
        return 1;
    }
    for (;;) {
        pause();
    }
    return 42; /* not reached */
}
